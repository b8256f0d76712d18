"""See inside a CNN in the browser: every layer's maps, the numbers behind each value.

:func:`explore` starts a small local web server for one model and opens its page; the
page shows every layer's feature maps for an input, the class probabilities, and for any
clicked cell how the layer computed it (a convolution's windows, kernel and partial
sums; the formula of every other layer) with the real numbers, plus saliency and
Grad-CAM overlays, kernel editing and the receptive field. ``cnnkit explore`` is the
command-line door to the same page; ``--html`` writes it as one self-contained file.

The modules: :mod:`~cnnkit.explore.session` (the maths), :mod:`~cnnkit.explore.details`
(one cell explained), :mod:`~cnnkit.explore.server` (the JSON API),
:mod:`~cnnkit.explore.export` (the static page); the page itself is in ``static/``.
"""

from __future__ import annotations

import os
import sys
import types

__all__ = ["explore", "Explorer", "open_session", "DIGITS_MODEL"]

#: The model opened when none is given: a small CNN trained on the bundled digits.
DIGITS_MODEL = os.path.join(os.path.dirname(__file__), "digits.npz")


def open_session(model=None, image=None, *, input_shape=None, classes=None):
    """A :class:`~cnnkit.explore.session.Session` for `model` showing `image`.

    Parameters
    ----------
    model : cnnkit.nn.Module, str, os.PathLike or None
        A model, or the path of one saved by :func:`cnnkit.save` (``.npz``) or an
        ``.onnx`` file; None opens the bundled digits model.
    image : str or os.PathLike, optional
        Any :func:`cnnkit.load_image` source, prepared as ``cnnkit predict`` prepares it;
        None starts from a blank (zero) input, or a test digit for the digits model.
    input_shape : (C, H, W), optional
        For a model object, the input it takes (read from the file for a saved model;
        guessed from the first layer when not given).
    classes : sequence of str, optional
        For a model object, the class names (default ``"0"``, ``"1"`` ...).

    Returns
    -------
    session : cnnkit.explore.session.Session
        A copy of the model, run on the input, with every layer's output recorded.
    source : str or None
        What the input shows (the image source or sample name).

    Examples
    --------
    >>> session, source = open_session()
    >>> session.input_shape, source
    ((1, 8, 8), 'digit:1')
    """
    from cnnkit.explore.session import Session
    from cnnkit.nn import Module
    from cnnkit.serialization import load_model

    if model is None:
        model = DIGITS_MODEL
    if isinstance(model, (str, os.PathLike)):
        model, metadata = load_model(os.fspath(model))
    elif isinstance(model, Module):
        metadata = {}
    else:
        raise TypeError(
            f"model must be a cnnkit.nn.Module or a model file path, got {type(model).__name__}"
        )
    if input_shape is not None:
        metadata["input_shape"] = [int(s) for s in input_shape]
    if classes is not None:
        metadata["classes"] = [str(c) for c in classes]
    session = Session(model, metadata)
    source = None
    if image is not None:
        from cnnkit.images import load_image

        session.set_image(load_image(image))
        source = os.fspath(image)
    elif metadata.get("data") == "digits":
        from cnnkit.data import load_digits

        _, test = load_digits()
        session.set_input(test.x[0])
        source = f"digit:{int(test.y[0])}"
    return session, source


class Explorer:
    """A running explorer: its page's address and how to stop it.

    Parameters
    ----------
    server : cnnkit.explore.server.ExplorerServer
        The started server (:func:`explore` makes both).

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:PORT/?token=TOKEN``: open it in a browser.
    session : cnnkit.explore.session.Session
        The model copy, its input and what each layer made of it.

    Examples
    --------
    >>> explorer = explore(open_browser=False)
    >>> explorer.url.startswith("http://127.0.0.1:")
    True
    >>> explorer.close()
    >>> explorer
    Explorer('http://127.0.0.1:...', closed)
    """

    def __init__(self, server):
        self._server = server
        self.url = server.url
        self.session = server.session

    def close(self) -> None:
        """Stop the server and free its port (calling it again does nothing)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Explorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "closed"
        return f"Explorer({self.url!r}, {state})"

    def _repr_html_(self) -> str:
        return f'<a href="{self.url}" target="_blank">cnnkit explore: {self.url}</a>'


def explore(
    model=None, image=None, *, port=0, open_browser=True, input_shape=None, classes=None
) -> Explorer:
    """Open a model in the browser: every layer's maps, and how each value was computed.

    Parameters
    ----------
    model : cnnkit.nn.Module, str or os.PathLike
        A model (it is copied: editing a kernel on the page never changes it), or the
        path of a saved one (``.npz`` from :func:`cnnkit.save`, or ``.onnx``); None
        opens the bundled digits model.
    image : str or os.PathLike, optional
        The first input: any :func:`cnnkit.load_image` source.
    port : int, default 0
        The port on 127.0.0.1; 0 picks a free one.
    open_browser : bool, default True
        Open the page in the default web browser.
    input_shape, classes : optional
        For a model object: its ``(C, H, W)`` input and its class names.

    Returns
    -------
    Explorer
        With ``.url`` and ``.close()``; a context manager that closes on exit.

    Raises
    ------
    ValueError
        A port out of range or already in use; a model or image that cannot be read.

    Examples
    --------
    >>> import cnnkit as ck
    >>> with ck.explore(open_browser=False) as explorer:
    ...     explorer.url.startswith("http://127.0.0.1:")
    True
    """
    from cnnkit.explore.server import ExplorerServer

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in [0, 65535], got {port!r}")
    if not isinstance(open_browser, bool):
        raise TypeError(f"open_browser must be a bool, got {open_browser!r}")
    session, source = open_session(model, image, input_shape=input_shape, classes=classes)
    try:
        server = ExplorerServer(session, port, source=source)
    except OSError as error:
        raise ValueError(
            f"cannot listen on 127.0.0.1 port {port}: {error.strerror or error}"
        ) from None
    server.start()
    explorer = Explorer(server)
    if open_browser:
        import webbrowser

        webbrowser.open(explorer.url)
    return explorer


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`explore`.

    ``ck.explore`` must be the function, but importing the package ``cnnkit.explore``
    (as the command line does) makes the attribute ``cnnkit.explore`` the package
    itself; calling the package calls the function, so both spellings work.
    """

    def __call__(self, *args, **kwargs) -> Explorer:
        return explore(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
