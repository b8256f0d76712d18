"""The Figure every cnnkit picture is drawn on, and the number formats they share.

Where a figure lives depends on how it will be seen:

- **pyplot drives windows** (a script or IPython with a GUI backend such as TkAgg or
  QtAgg, Spyder with its Qt backend): the figure is created by ``pyplot.figure``, so
  ``plt.show()`` shows it and ``fig.show()`` opens its window, as for any matplotlib
  figure.
- **Otherwise** (no pyplot imported, the Agg backend of a headless run, Jupyter's inline
  backend): the figure stays on its own Agg canvas and pyplot never hears of it, so
  nothing leaks between calls. In Jupyter it shows as the cell's value (its
  ``_repr_png_`` or the inline backend's formatter); ``fig.show()`` displays it there,
  hands it to pyplot when pyplot has since been given a GUI backend, and does nothing
  on a non-interactive backend such as Agg; ``fig.savefig`` works everywhere.
"""

from __future__ import annotations

import io
import math
import sys
from typing import Literal

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MINUS = "\u2212"  # a real minus sign, as wide as the plus


class CnnkitFigure(Figure):
    """A matplotlib Figure that shows itself in Jupyter, in a window, or not at all.

    See the module's notes for where it lives; :meth:`show` works in every case.
    """

    def _repr_png_(self) -> bytes:
        # Jupyter uses this PNG until matplotlib's inline backend is loaded
        # (``%matplotlib inline`` or ``import matplotlib.pyplot``).
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()

    def show(self, warn: bool = True) -> None:
        """Show the figure: its window, its picture in Jupyter, or nothing when headless.

        A figure that pyplot manages is shown as ``Figure.show`` does (not blocking: in a
        script, call ``matplotlib.pyplot.show()`` to keep the window open). A figure
        pyplot does not know yet is handed to it when pyplot's backend opens windows,
        displayed inline in Jupyter, and left alone on a non-interactive backend (Agg),
        where ``savefig`` is the way to see it.

        Parameters
        ----------
        warn : bool, default True
            Passed to ``matplotlib.figure.Figure.show`` for a managed figure.
        """
        if self.canvas.manager is None:
            import matplotlib.pyplot as plt  # showing is pyplot's job: import it now

            backend = _pyplot_backend()
            if backend == "gui":
                plt.figure(self)  # pyplot adopts the figure: a manager and a window
            elif backend == "inline":
                from IPython.display import display

                display(self)
                return
            else:
                return
        super().show(warn=warn)


def _pyplot_backend() -> str | None:
    """``"gui"``, ``"inline"`` or None: what pyplot, if it is imported, does with figures."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return None
    if "inline" in pyplot.get_backend():  # module://matplotlib_inline.backend_inline
        return "inline"
    canvas = pyplot._get_backend_mod().FigureCanvas
    if getattr(canvas, "required_interactive_framework", None) is not None:
        return "gui"
    return None


def new_figure(
    width: float,
    height: float,
    *,
    layout: Literal["constrained", "compressed", "tight"] | None = "constrained",
):
    """A :class:`CnnkitFigure` of `width` x `height` inches, managed by pyplot when it shows windows."""
    if _pyplot_backend() == "gui":
        import matplotlib.pyplot as plt

        return plt.figure(figsize=(width, height), layout=layout, FigureClass=CnnkitFigure)
    fig = CnnkitFigure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def dims(shape) -> str:
    """A shape as ``3×5``."""
    return "\u00d7".join(str(s) for s in shape)


def format_number(value: float) -> str:
    """A single number as short text: integers without a decimal point, a real minus sign."""
    value = float(value)
    if not math.isfinite(value):
        text = str(value)
    elif value == 0:
        text = "0"
    elif value.is_integer() and abs(value) < 1e6:
        text = str(int(value))
    elif abs(value) >= 100:
        text = f"{value:.3g}"
    elif abs(value) < 0.01:
        text = f"{value:.1e}"
    else:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text.replace("-", MINUS)


def format_grid(values, digits: int = 3) -> list[str]:
    """Numbers that are shown together (a kernel's cells) as text in one shared format.

    Whole numbers print as integers; otherwise every value gets the same number of
    decimals, enough for `digits` significant digits of the largest magnitude, so 0.006
    and 0.14 in one kernel read ``0.006`` and ``0.140``, never ``6e-03`` next to ``0.14``.
    Grids whose largest magnitude is below 0.001 use one shared scientific format.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    finite = a[np.isfinite(a)]
    if finite.size and np.all(finite == np.round(finite)) and np.abs(finite).max() < 1e6:
        texts = [str(int(v)) if math.isfinite(v) else str(v) for v in a]
    else:
        largest = float(np.abs(finite).max()) if finite.size else 0.0
        if 0 < largest < 1e-3:
            texts = [f"{v:.1e}" for v in a]
        else:
            magnitude = math.floor(math.log10(largest)) if largest > 0 else 0
            decimals = min(max(digits - 1 - magnitude, 0), 4)
            texts = [f"{v:.{decimals}f}" for v in a]
    # "-0.000" (a tiny negative rounded away) reads as 0
    texts = [t.lstrip("-") if t.startswith("-") and float(t) == 0 else t for t in texts]
    return [t.replace("-", MINUS) for t in texts]
