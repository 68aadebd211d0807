"""`rip demo`: serve the demo's page (Gradio) until Ctrl-C or SIGTERM; runs still going end KILLED."""

import os
import time

import click

from rip.failures import sigterm_interrupts

MAX_UPLOAD = "50mb"  # larger files are refused by the page before they reach a run


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface), as Gradio's server_name.")
@click.option("--port", type=int, default=None,
              help="Port to listen on, as Gradio's server_port [default: the first free one from 7860].")
@click.option("--share", is_flag=True, help="Also serve through a temporary public gradio.live link.")
@click.option("--experiment", default="demo", show_default=True, help="MLflow experiment of the demo's runs.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI].")
def demo(host, port, share, experiment, tracking_uri):
    """Try the recursion on one picture in the browser: each start is one configuration run, as
    `rip run` records it (needs the `demo` extra: pip install "rip[demo]")."""
    import mlflow

    app, runner = make_app(tracking_uri or mlflow.get_tracking_uri(), experiment)
    try:
        with sigterm_interrupts():
            _, local_url, share_url = app.launch(server_name=host, server_port=port, share=share, quiet=True,
                                                 prevent_thread_lock=True, ssr_mode=False, max_file_size=MAX_UPLOAD)
            click.echo(f"rip demo at {local_url}" + (f" and {share_url}" if share_url else "")
                       + f" (runs into experiment {experiment!r} of {runner.tracking_uri}); Ctrl-C stops it")
            while app.is_running:
                time.sleep(0.2)
    except KeyboardInterrupt as interrupt:
        click.echo(f"rip demo: stopped by {interrupt or 'KeyboardInterrupt'}; runs still going end KILLED", err=True)
    finally:
        runner.stop_all()
        app.close()


def make_app(tracking_uri: str, experiment: str, **places):
    """The demo's Gradio app and its runner (`places`: its `uploads` and `spool_root`), Gradio's calls
    home switched off."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Gradio summarises event timings for its monitoring dashboard (not served here) with pandas options
    # that pandas 3 deprecates, warning after every event: never summarise
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(2**62))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # fetching a run's animation back
    try:
        from rip.demo.app import build_app
    except ImportError as error:
        raise click.ClickException(f"rip demo needs the demo extra ({error}): pip install \"rip[demo]\"") from error
    from rip.demo.choices import offered
    from rip.demo.live import DemoRunner
    from rip.tracking.ui import print_own_addresses

    print_own_addresses()  # the page shows each run's address

    runner = DemoRunner(tracking_uri, experiment, **places)
    return build_app(runner, offered()), runner

