"""Pictures of images, kernels, feature maps and training runs; GIFs of a sliding kernel.

The public name of :mod:`cnnkit.viz`: every function returns a
:class:`matplotlib.figure.Figure` (the animations write a GIF). How a figure is seen:

- in Jupyter, as the cell's value (or ``fig.show()``);
- in a script, IPython or Spyder with a GUI backend, as any pyplot figure: ``plt.show()``
  shows every figure drawn since pyplot was imported, ``fig.show()`` one of them;
- anywhere, headless included: ``fig.savefig("out.png")``.

Colour conventions: an image's channels in their own colour (black to red, green,
blue); values that can be negative (kernels, filter responses) on a blue-white-red
scale centred on 0, with a colour bar; values that cannot on ``viridis``.

>>> import numpy as np
>>> from cnnkit import plot
>>> plot.show_kernel(np.eye(3)).axes[0].get_title()
'kernel 3×3'
"""

from cnnkit.viz import *  # noqa: F403  - this module is the package's public face
from cnnkit.viz import __all__  # noqa: F401
