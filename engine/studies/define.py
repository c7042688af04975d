"""Studies defined in Python (`pivotal.Study`), checked exactly as a study file is, and the
public path grammar: `input_paths` (what an input or a variant may set) and, from
engine/outputs/figures.py, `figure_paths` (what a study may take as an output).

    st = pivotal.Study("drivers", "configs/scenarios/tutorial.toml", episodes=2_000,
                       design={"sampler": "morris", "samples": 16},
                       inputs=[{"path": "budget", "low": 100, "high": 600}],
                       outputs=["success", "candidates.B.member", "capacity.p50"])
    result = pivotal.study(st)
"""
from __future__ import annotations

from pathlib import Path

from engine.model.scenario import load_scenario, read_toml, refusal
from engine.studies import paths, study as study_file

__all__ = ["Study", "input_paths"]


class Study:
    """A study given in Python: the keys of a study file (STUDY_FORMAT.md) as arguments, checked
    at once by the same code as a file (a broken rule raises ScenarioError naming the study, the
    key path and the rule). `inputs` and `variants` are lists of dicts with a file's keys; a
    relative `scenario` is from the current directory. `checked` is the validated study that
    `pivotal.study` runs; `document` the study file's content (`to_toml` writes it)."""

    def __init__(self, name: str, scenario, *, inputs=(), variants=(), design: dict | None = None,
                 outputs=None, episodes: int | None = None, seed: int | None = None):
        doc = {"name": name, "scenario": str(Path(scenario).resolve()) if isinstance(scenario, Path) else scenario}
        for key, value in (("episodes", episodes), ("seed", seed), ("design", design), ("outputs", outputs)):
            if value is not None:
                doc[key] = dict(value) if isinstance(value, dict) else list(value) if key == "outputs" else value
        if inputs:
            doc["inputs"] = [dict(i) for i in inputs]
        if variants:
            doc["variants"] = [dict(v) for v in variants]
        self.document = doc
        self.checked = study_file.load_study(Path(f"<Study {name!r}>"), doc)

    @classmethod
    def from_toml(cls, path) -> "Study":
        """A study file as a `Study` (its scenario path made absolute)."""
        doc, _ = read_toml(Path(path), refusal(Path(path)))
        scenario = doc.get("scenario")
        if isinstance(scenario, str) and not Path(scenario).is_absolute():
            doc["scenario"] = str((Path(path).parent / scenario).resolve())
        keys = {k: doc.pop(k) for k in ("name", "scenario") if k in doc}
        return cls(keys.get("name"), keys.get("scenario"), **doc)

    def to_toml(self, path) -> Path:
        """Write the study as a study file (the scenario as an absolute path)."""
        import tomli_w

        doc = dict(self.document)
        doc["scenario"] = str(Path(self.checked.base_path).resolve())
        Path(path).write_text(tomli_w.dumps(doc))
        return Path(path)

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.checked.outputs

    def __repr__(self):
        st = self.checked
        return (f"Study({st.name!r}, {st.base_path!r}, {len(st.inputs)} inputs, {st.rows} rows, "
                f"{len(st.variants)} variants, outputs {list(st.outputs)})")


def input_paths(scenario) -> list[str]:
    """Every path an input or a variant may name in `scenario` (a path or a `Scenario`): the
    grammar of docs/STUDIES.md ("Paths") resolved against its candidates, ties and institutions."""
    s = load_scenario(scenario) if not hasattr(scenario, "candidates") else scenario
    out = list(paths.TOP_NUMBERS)
    out += [f"parameters.{k}" for k in paths.PARAMETERS] + [f"mechanisms.{k}" for k in paths.MECHANISMS]
    for cid in ["*", *(c.id for c in s.candidates)]:
        out += [f"candidates.{cid}.{f}.{sub}" for f, subs in paths.CANDIDATE_FIELDS.items() for sub in subs]
    out += [f"ties.{t.a}.{t.b}.{sub}" for t in s.ties for sub in ("mean", "concentration")]
    out += [f"institutions.{i.id}.{a}" for i in s.institutions for a in paths.INSTITUTION_FIELDS]
    return [p for p in out if not isinstance(paths.resolve(p, None, s), str)]
