"""Image sets and letterboxing: what the recursion starts from."""

from rip.images.letterbox import Box, content_box, letterbox, load_images, load_letterboxed
from rip.images.sets import SAMPLE_IMAGES, resolve_image_set
from rip.images.source import SourceImage

__all__ = ["SAMPLE_IMAGES", "Box", "SourceImage", "content_box", "letterbox", "load_images", "load_letterboxed",
           "resolve_image_set"]
