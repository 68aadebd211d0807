"""Image sets and letterboxing: what the recursion starts from."""

from rip.images.letterbox import letterbox, load_images
from rip.images.sets import SAMPLE_IMAGES, resolve_image_set
from rip.images.source import SourceImage

__all__ = ["SAMPLE_IMAGES", "SourceImage", "letterbox", "load_images", "resolve_image_set"]
