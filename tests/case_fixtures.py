"""A backtest case on the COW-format fixtures (tests/fixtures/cow): three candidates ALY, NON, FAR
of pivot PIV against TGT, and the participants of war 999."""
from pathlib import Path

FIX = Path(__file__).resolve().parent / "fixtures" / "cow"
CASE = """name = "Fixture war"
data = "cow"

[build]
pivot = "PIV"
year = 2000
target = "TGT"
deadline_days = 120

[observed]
file = "cow_war_participants.csv"
warnum = 999
side = 1
"""
