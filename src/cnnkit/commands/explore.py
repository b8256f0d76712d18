"""``cnnkit explore``: see inside a model in the browser, or save its maps as one page."""

from __future__ import annotations

import argparse

from cnnkit.commands._common import output_file

HELP = "open a model in the browser: every layer's maps and the numbers behind each value"

EPILOG = """\
The page shows every layer's feature maps for one input, the class probabilities, and,
for a clicked cell, how the layer computed it (a convolution's window, kernel, partial
sums and bias; the formula of every other layer) with the real numbers. It also draws
saliency and Grad-CAM overlays, lets you edit a kernel value, and offers the bundled
samples, your own pictures (upload or drag and drop) and a drawing pad.

The server listens on 127.0.0.1 only, and the address carries a random token. Stop it
with Ctrl-C.

examples:
  cnnkit explore                              the bundled digits model
  cnnkit explore model.npz --image cat.jpg
  cnnkit explore model.npz --image cat.jpg --html cat.html   (a page to share; no server)"""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in [0, 65535], got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``cnnkit explore``."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        default=None,
        help="a model file (.npz from cnnkit train or cnnkit.save, or .onnx); "
        "default: a small CNN trained on the bundled digits",
    )
    parser.add_argument(
        "--image",
        metavar="SOURCE",
        help="the first input: a picture file, an http(s) URL or a bundled "
        "sample name (chelsea, camera ...)",
    )
    parser.add_argument(
        "--port", type=_port, default=0, metavar="N", help="port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="print the address without opening a browser"
    )
    parser.add_argument(
        "--html",
        type=output_file((".html", ".htm")),
        metavar="OUT.html",
        help="write one self-contained page with the input's maps and exit",
    )


def run(args: argparse.Namespace) -> int:
    """Serve the explorer until Ctrl-C, or write the page; return the exit status."""
    import sys

    from cnnkit.commands._common import check_not_input
    from cnnkit.explore import Explorer, open_session

    if args.html is not None:
        check_not_input(args.html, [args.model, args.image])
    session, source = open_session(args.model, args.image)
    if args.html is not None:
        from cnnkit.explore.export import write_html

        write_html(session, args.html, source)
        print(f"wrote {args.html}")
        return 0
    from cnnkit.explore.server import ExplorerServer

    try:
        server = ExplorerServer(session, args.port, source=source)
    except OSError as error:
        raise ValueError(
            f"cannot listen on 127.0.0.1 port {args.port}: {error.strerror or error}"
        ) from None
    explorer = Explorer(server)
    print(f"cnnkit explore: {explorer.url}\n(press Ctrl-C to stop)", flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(explorer.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
