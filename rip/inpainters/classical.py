"""Non-learned inpainting baselines: OpenCV's Telea and Navier-Stokes, scikit-image's biharmonic."""

from collections.abc import Sequence

import cv2
import numpy as np
from skimage.restoration import inpaint_biharmonic

from rip.inpainters.base import Inpainter

OPENCV_FLAGS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


class OpenCVInpainter(Inpainter):
    """`cv2.inpaint` with the Telea or Navier-Stokes method."""

    def __init__(self, method: str, radius: int = 3):
        self.name = method
        self.flag = OPENCV_FLAGS[method]
        self.radius = radius

    def inpaint(self, images, masks, seeds):
        return [
            cv2.inpaint(image, mask.astype(np.uint8) * 255, self.radius, self.flag)
            for image, mask in zip(images, masks)
        ]

    def params(self):
        return {"inpaint_radius": str(self.radius)}


class BiharmonicInpainter(Inpainter):
    """`skimage.restoration.inpaint_biharmonic`, solved per masked region."""

    name = "biharmonic"

    def inpaint(self, images: Sequence[np.ndarray], masks, seeds):
        results = []
        for image, mask in zip(images, masks):
            filled = inpaint_biharmonic(image.astype(np.float64) / 255, mask, channel_axis=-1)
            results.append(np.clip(np.rint(filled * 255), 0, 255).astype(np.uint8))
        return results
