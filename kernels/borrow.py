"""Borrowed array views: the same data, without a reference count.

Numba counts references to every array it hands from one function to another,
with an atomic increment and decrement, also into functions it inlines when
they contain loops: in the event loop those atomic operations cost more than
the model. `borrow(a)` returns a view of `a` that shares its data but owns no
reference (its meminfo is null, so Numba's reference counting of it is a null
check). A borrowed view must not outlive the array it borrows from: the
kernels borrow only inside the call that receives the owning arrays.
"""
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def borrow(typingctx, array):
    """A view of `array` (same data, shape and strides) that holds no reference to it."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        source = context.make_array(array)(context, builder, value=args[0])
        view = context.make_array(array)(context, builder)
        context.populate_array(view, data=source.data, shape=source.shape, strides=source.strides,
                               itemsize=source.itemsize, meminfo=None, parent=source.parent)
        return view._getvalue()

    return array(array), codegen
