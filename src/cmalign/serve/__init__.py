"""``cmalign serve``: one model, labelling as a team labels, over HTTP, learning from new labels.

Two faces of the same :class:`~cmalign.serve.model.ServedModel`: Label Studio's ML backend
protocol (``/health``, ``/setup``, ``/predict``, ``/webhook``) and a JSON API (``/v1/label``,
``/v1/labels``, ``/v1/model``, ``/v1/refit``). The labelling is ``annotate``'s own code path (the
bank loaded by :class:`~cmalign.jobs.common.Model`, records from :class:`~cmalign.Labeler`), so a
batch gets the records ``cmalign annotate --adapt 0`` writes for it. Needs the ``serve`` extra.
"""

from __future__ import annotations

from ..errors import CmalignError
from ..process import default_threads, map_large_blocks, set_threads
from ..progress import QUIET, Progress
from .options import ServeOptions, is_loopback

# uvicorn waits this long for requests in flight after SIGTERM or ^C before closing their connections
GRACE_SECONDS = 30


def serve(options: ServeOptions, progress: Progress = QUIET) -> None:
    """Load the bank, learn any labels kept from an earlier run, and serve until SIGTERM or ^C,
    which finish the requests in flight (and so their label writes) before the process ends.

    Parameters
    ----------
    options : ServeOptions
        The bank, where to listen, the token, the limits and the model (as for ``annotate``).
    progress : Progress
        Where the phases of the start are said (loading the bank, learning kept labels).

    Raises
    ------
    CmalignError
        A setting out of range, no token for an address beyond loopback, the ``serve`` extra not
        installed, or a bank that cannot be served (a :class:`~cmalign.errors.DataError` naming it).
    """
    options.check()
    try:
        import uvicorn

        from .app import build_app
    except ImportError as exc:
        raise CmalignError(f"cmalign serve needs the serve extra ({exc.name} is missing): "
                           "pip install 'cmalign[serve]'") from None
    from .model import ServedModel

    set_threads(options.threads if options.threads is not None else default_threads())
    map_large_blocks()
    served = ServedModel(options, progress)
    try:
        config = uvicorn.Config(build_app(served, options), host=options.host, port=options.port,
                                access_log=False,  # ours has no query strings and says how long each took
                                log_config=None, lifespan="on", timeout_graceful_shutdown=GRACE_SECONDS)
        uvicorn.Server(config).run()
    finally:
        served.close()  # closed already at the lifespan's end, unless the server never started (a port in use)


__all__ = ["ServeOptions", "is_loopback", "serve"]
