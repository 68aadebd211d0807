"""The models of a sweep's configurations, loaded once and shared."""

from rip.config import RunConfig
from rip.inpainters import inpainter_key, load_inpainter, resolve_device
from rip.metrics import load_metrics


class Models:
    """The inpainter and metrics of each configuration: one model in memory at a time, shared by
    configurations that load the same one; each metric loaded once per device."""

    def __init__(self):
        self.key, self.inpainter, self.metrics = None, None, {}

    def get(self, config: RunConfig) -> tuple[str, "object", list]:
        """(device, inpainter, metrics) for `config`."""
        device = resolve_device(config.device)
        if inpainter_key(config) != self.key:
            self.inpainter = None  # release the previous model before loading the next
            self.inpainter, self.key = load_inpainter(config, device), inpainter_key(config)
        for name in config.metrics:
            if (name, device) not in self.metrics:
                self.metrics[name, device] = load_metrics([name], device)[0]
        return device, self.inpainter, [self.metrics[name, device] for name in config.metrics]
