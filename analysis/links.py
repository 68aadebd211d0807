"""Run and experiment links for the report: rip.ui's runs-view addresses, where a tracking server has them."""

from urllib.parse import urlparse

from rip.tracking import ui


def experiment_url(tracking_uri: str | None, experiment_id: str) -> str | None:
    """The experiment's runs list on a tracking server; None for a local store, which has no address."""
    return ui.runs_url(tracking_uri, experiment_id) if _served(tracking_uri) else None


def run_url(tracking_uri: str | None, experiment_id: str, run_id: str) -> str | None:
    """One run's page on a tracking server; None for a local store."""
    return ui.run_url(tracking_uri, experiment_id, run_id) if _served(tracking_uri) else None


def _served(tracking_uri: str | None) -> bool:
    return bool(tracking_uri) and urlparse(tracking_uri).scheme in ("http", "https")
