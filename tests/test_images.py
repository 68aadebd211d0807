import io
import json
import re
import time
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from PIL import Image

from rip import images
from rip.images import SourceImage, letterbox, load_images, resolve_image_set
from tests.conftest import STYLES

SAFE_ID = re.compile(r"[A-Za-z0-9._-]+")


def rgb_at(array, x, y):
    return tuple(int(v) for v in array[y, x])


def write_images(folder, names, size=(8, 6)):
    for index, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (index * 10 % 256, 0, 0)).save(path)


# letterbox ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "content_width", "content_height"),
    [
        (600, 400, 512, 341),  # landscape: 400 * 512 / 600 = 341.3
        (400, 600, 341, 512),  # portrait
        (300, 300, 512, 512),  # square
        (10, 3, 512, 154),  # tiny, upscaled: 3 * 51.2 = 153.6
        (3000, 1000, 512, 171),  # large: 1000 * 512 / 3000 = 170.7
        (4000, 3000, 512, 384),
    ],
)
def test_letterbox_places_content_between_white_bands(width, height, content_width, content_height):
    image = Image.new("RGB", (width, height), (0, 0, 0))
    array = letterbox(image, 512)
    assert array.shape == (512, 512, 3) and array.dtype == np.uint8
    top, left = (512 - content_height) // 2, (512 - content_width) // 2
    content = np.zeros((512, 512), dtype=bool)
    content[top : top + content_height, left : left + content_width] = True
    assert (array[content] == 0).all()
    assert (array[~content] == 255).all()
    assert image.size == (width, height) and image.getpixel((0, 0)) == (0, 0, 0)  # input untouched


def test_letterbox_band_widths_split_odd_remainder():
    array = letterbox(Image.new("RGB", (600, 400)), 512)  # 512 - 341 = 171 rows of white
    white_rows = (array == 255).all(axis=(1, 2))
    assert white_rows[:85].all() and not white_rows[85] and white_rows[-86:].all() and not white_rows[-87]


def test_letterbox_rejects_bad_size():
    with pytest.raises(ValueError, match="size"):
        letterbox(Image.new("RGB", (4, 4)), 0)


def test_rgba_transparency_is_white():
    image = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # transparent red
    image.paste((0, 0, 255, 255), (10, 0, 20, 20))  # opaque blue right half
    image.paste((0, 0, 0, 128), (0, 15, 20, 20))  # half-transparent black bottom strip
    array = letterbox(image, 20)
    assert rgb_at(array, 3, 5) == (255, 255, 255)
    assert rgb_at(array, 16, 5) == (0, 0, 255)
    assert all(abs(v - 127) <= 2 for v in rgb_at(array, 5, 18))


def test_la_transparency_is_white():
    image = Image.new("LA", (20, 20), (0, 0))
    image.paste((50, 255), (10, 0, 20, 20))
    array = letterbox(image, 20)
    assert rgb_at(array, 3, 5) == (255, 255, 255) and rgb_at(array, 16, 5) == (50, 50, 50)


def test_palette_transparency_is_white(tmp_path):
    image = Image.new("P", (20, 20), 0)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.paste(1, (10, 0, 20, 20))
    image.save(tmp_path / "p.png", transparency=0)
    reopened = Image.open(tmp_path / "p.png")
    assert reopened.mode == "P" and "transparency" in reopened.info
    array = letterbox(reopened, 20)
    assert rgb_at(array, 3, 5) == (255, 255, 255) and rgb_at(array, 16, 5) == (255, 0, 0)


def test_greyscale_becomes_grey_rgb():
    array = letterbox(Image.new("L", (20, 20), 100), 20)
    assert (array == 100).all()


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.full((20, 20), 65535, dtype=np.uint16)
    values[:, 10:] = 32768
    Image.fromarray(values).save(tmp_path / "deep.png")
    image = Image.open(tmp_path / "deep.png")
    assert image.mode == "I;16"
    array = letterbox(image, 20)
    assert rgb_at(array, 3, 5) == (255, 255, 255)
    assert rgb_at(array, 16, 5) == (128, 128, 128)
    assert rgb_at(letterbox(Image.fromarray(values.astype(np.int32)), 20), 16, 5) == (128, 128, 128)  # mode I


def test_float_greyscale():
    assert (letterbox(Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)), 4) == 128).all()
    assert (letterbox(Image.fromarray(np.full((4, 4), 200.0, dtype=np.float32)), 4) == 200).all()


def test_cmyk_and_bilevel():
    assert rgb_at(letterbox(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), 4), 1, 1) == (255, 0, 0)
    assert rgb_at(letterbox(Image.new("CMYK", (4, 4), (0, 0, 0, 255)), 4), 1, 1) == (0, 0, 0)
    assert (letterbox(Image.new("1", (4, 4), 1), 4) == 255).all()


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))  # stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    array = letterbox(Image.open(tmp_path / "rotated.jpg"), 40)
    assert (load_images([SourceImage("rotated", str(tmp_path / "rotated.jpg"))], 40)[0] == array).all()
    # Upright the image is 20 wide and 40 tall: red on top, blue below, white bands left/right.
    assert (array[:, :9] == 255).all() and (array[:, 31:] == 255).all()
    top, bottom = rgb_at(array, 20, 8), rgb_at(array, 20, 31)
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


# image sets ----------------------------------------------------------------------------------


def test_sample_set_works_offline_and_loads():
    sources = resolve_image_set("sample", 0)
    ids = [source.id for source in sources]
    assert ids == list(images.SAMPLE_IMAGES)
    assert len(set(ids)) == len(ids) and all(SAFE_ID.fullmatch(i) for i in ids)
    assert {"astronaut", "grace_hopper", "coffee"} <= set(ids)
    arrays = load_images(sources, 64)
    assert len(arrays) == len(sources)
    assert all(a.shape == (64, 64, 3) and a.dtype == np.uint8 for a in arrays)


def test_sample_subset_is_seeded():
    full = resolve_image_set("sample", 0)
    first = resolve_image_set("sample:4", 3)
    assert first == resolve_image_set("sample:4", 3)
    assert len(first) == 4 and all(source in full for source in first)
    assert first == sorted(first, key=full.index)


def test_folder_is_listed_recursively_in_sorted_order(tmp_path):
    write_images(tmp_path, ["b.png", "a.jpg", "sub/c.png", "sub dir/é.PNG", "A.tif", "x/y/z.webp"])
    write_images(tmp_path, [".hidden.png", ".git/x.png"])
    (tmp_path / "notes.txt").write_text("not an image")
    sources = resolve_image_set(str(tmp_path), 0)
    assert [s.id for s in sources] == ["A.tif", "a.jpg", "b.png", "sub-c.png", "sub_dir-_.PNG", "x-y-z.webp"]
    assert sources[3].origin == str(tmp_path / "sub" / "c.png")
    assert all(a.shape == (16, 16, 3) for a in load_images(sources, 16))


def test_folder_ids_stay_unique(tmp_path):
    write_images(tmp_path, ["a b.png", "a_b.png", "a-b/c.png", "a/b-c.png"])
    ids = [s.id for s in resolve_image_set(str(tmp_path), 0)]
    assert len(set(ids)) == 4 and all(SAFE_ID.fullmatch(i) for i in ids)
    assert ids == ["a-b-c.png", "a_b.png", "a-b-c.png-2", "a_b.png-2"]  # a/, "a b", a-b/, a_b


def test_folder_subset_is_seeded(tmp_path):
    write_images(tmp_path, [f"img{i:02d}.png" for i in range(20)])
    full = resolve_image_set(str(tmp_path), 0)
    subset = resolve_image_set(f"{tmp_path}:5", 7)
    assert subset == resolve_image_set(f"{tmp_path}:5", 7)
    assert subset != resolve_image_set(f"{tmp_path}:5", 8)
    expected = sorted(np.random.default_rng(7).choice(20, size=5, replace=False))
    assert subset == [full[i] for i in expected]
    assert resolve_image_set(f"{tmp_path}:20", 1) == full


def test_folder_name_with_colon(tmp_path):
    folder = tmp_path / "set:2"
    write_images(folder, ["a.png", "b.png", "c.png"])
    assert len(resolve_image_set(str(folder), 0)) == 3
    assert len(resolve_image_set(f"{folder}:2", 0)) == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{folder}:0", "positive"),
        ("{folder}:-2", "positive"),
        ("{folder}:abc", "'abc'"),
        ("{folder}:1.5", "'1.5'"),
        ("{folder}:", "malformed"),
        ("{folder}:4", "asks for 4 images but only 3"),
        ("{folder}/missing", "missing"),
        ("{folder}/missing:2", "missing"),
        ("{folder}/a.png", "a.png"),
        ("sample:0", "positive"),
        ("sample:x", "'x'"),
        ("sample:1000", "1000"),
        ("wikiart", "needs a count"),
        ("wikiart:ten", "'ten'"),
        ("hf", "needs a count"),
        ("hf:owner/name", "needs a count"),
        ("hf:not-a-repo:train:3", "neither an existing folder nor a hub dataset id"),
        ("sample:4@0/5", "asks for 5 images but only 4"),
        ("sample/x", "unknown image set 'sample/x'"),
        ("nonsense", "unknown image set 'nonsense'"),
        ("", "unknown image set"),
    ],
)
def test_bad_specs_raise(tmp_path, spec, message):
    write_images(tmp_path, ["a.png", "b.png", "c.png"])
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_image_set(spec.format(folder=tmp_path), 0)


def test_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(ValueError, match="no image files"):
        resolve_image_set(str(tmp_path), 0)


def test_corrupt_and_truncated_files_name_the_file(tmp_path):
    (tmp_path / "garbage.png").write_bytes(b"this is not a png at all" * 10)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for name in ("cut.png", "cut.jpg"):
        buffer = io.BytesIO()
        Image.fromarray(noise).save(buffer, format="PNG" if name.endswith("png") else "JPEG")
        (tmp_path / name).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    sources = resolve_image_set(str(tmp_path), 0)  # listing does not decode
    for source in sources:
        with pytest.raises(ValueError, match=re.escape(source.id)):
            load_images([source], 16)


# sub-draws -----------------------------------------------------------------------------------


def test_sub_draw_takes_images_of_the_pinned_set(tmp_path):
    write_images(tmp_path, [f"{i:02d}.png" for i in range(30)])
    hundred = [s.id for s in resolve_image_set(f"{tmp_path}:20@0", seed=7)]
    ten = [s.id for s in resolve_image_set(f"{tmp_path}:20@0/10", seed=7)]
    assert len(ten) == 10 and set(ten) < set(hundred)
    assert ten == [s.id for s in resolve_image_set(f"{tmp_path}:20@0/10", seed=3)]  # pinned: any run seed
    assert ten != [s.id for s in resolve_image_set(f"{tmp_path}:20@0/10@1", seed=7)]  # /M@T draws with T
    sample = [s.id for s in resolve_image_set("sample:8@0/3", seed=5)]
    assert len(sample) == 3 and set(sample) < {s.id for s in resolve_image_set("sample:8@0", seed=5)}
    assert set(s.id for s in resolve_image_set("sample/4", seed=1)) < {s.id for s in resolve_image_set("sample", 0)}


# Hugging Face datasets (WikiArt is one) --------------------------------------------------------

def test_hf_dataset_draws_rows_with_labels(hub_dataset):
    sources = resolve_image_set(f"hf:{hub_dataset}:train:5@1", seed=0)
    indices = sorted(np.random.default_rng(1).choice(23, size=5, replace=False).tolist())
    assert [s.id for s in sources] == [f"paintings-{i:05d}" for i in indices]
    for source, index in zip(sources, indices):
        assert dict(source.labels) == {"style": STYLES[index % 3], "artist": f"artist {index}"}
        image = source.load()
        assert image.size == (6 + index % 3, 4) and image.getpixel((1, 1))[0] == index * 10
    cached = sorted(p.name for p in Path(sources[0].origin).parent.glob("*.png"))
    assert cached == [f"{i:05d}.png" for i in indices]  # only the drawn rows were read
    assert [s.id for s in resolve_image_set(f"hf:{hub_dataset}:test:4", seed=0)] == [
        f"paintings-{i:05d}" for i in range(4)
    ]
    assert {s.id for s in resolve_image_set(f"hf:{hub_dataset}:train:10@1/3", 0)} < {
        s.id for s in resolve_image_set(f"hf:{hub_dataset}:train:10@1", 0)
    }


def test_hf_dataset_errors_name_the_problem(hub_dataset):
    with pytest.raises(ValueError, match="asks for 24 images but only 23"):
        resolve_image_set(f"hf:{hub_dataset}:train:24", 0)
    with pytest.raises(ValueError, match="no parquet files of split 'validation'"):
        resolve_image_set(f"hf:{hub_dataset}:validation:2", 0)
    with pytest.raises(ValueError, match="has no revision"):
        resolve_image_set(f"hf:{hub_dataset}@abc:train:2", 0)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("RIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    from rip.images.hub import WIKIART_REPO, WIKIART_REVISION

    return tmp_path / "cache" / "hf" / WIKIART_REPO.replace("/", "--") / WIKIART_REVISION / "train"


def test_wikiart_offline_without_cache_fails_fast(offline):
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="huggingface.co") as error:
        resolve_image_set("wikiart:3", 0)
    assert time.monotonic() - started < 5
    assert str(offline) in str(error.value)


def test_wikiart_cache_hit_needs_no_network(offline):
    offline.mkdir(parents=True)
    (offline / "manifest.json").write_text(json.dumps({"files": ["data/a.parquet"], "rows": [81_444], "features": {}}))
    indices = sorted(np.random.default_rng(5).choice(81_444, size=3, replace=False).tolist())
    for index in indices:
        Image.new("RGB", (30, 20), (index % 256, 0, 0)).save(offline / f"{index:05d}.png")
        (offline / f"{index:05d}.json").write_text(json.dumps({"style": "Cubism"}))
    sources = resolve_image_set("wikiart:3", 5)
    assert [s.id for s in sources] == [f"wikiart-{i:05d}" for i in indices]
    assert all(SAFE_ID.fullmatch(s.id) for s in sources) and sources[0].labels == (("style", "Cubism"),)
    arrays = load_images(sources, 30)
    assert [rgb_at(a, 15, 15)[0] for a in arrays] == [i % 256 for i in indices]


def test_source_image_is_frozen():
    source = SourceImage("astronaut", "skimage:astronaut")
    with pytest.raises(AttributeError):
        source.id = "other"
    assert source.load().size == (512, 512)


def test_pad_color_and_resample_are_conditions():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 60, 3), dtype=np.uint8))
    white = letterbox(image, 40)
    black = letterbox(image, 40, pad_color="black")
    grey = letterbox(image, 40, pad_color="#808080")
    assert rgb_at(white, 0, 0) == (255, 255, 255) and rgb_at(black, 0, 0) == (0, 0, 0)
    assert rgb_at(grey, 39, 39) == (128, 128, 128)
    assert (white[10:30] == black[10:30]).all()  # the content rows (20 of 40) are the same
    nearest = letterbox(image, 40, resample="nearest")
    assert (nearest[10:30] == np.asarray(image.resize((40, 20), Image.Resampling.NEAREST))).all()
    assert not (nearest[10:30] == white[10:30]).all()


def test_a_pick_takes_the_images_of_those_ids_in_the_sets_order(tmp_path):
    write_images(tmp_path, ["a.png", "b.png", "c.png"])
    assert [s.id for s in resolve_image_set("sample#astronaut", 0)] == ["astronaut"]
    assert [s.id for s in resolve_image_set(f"{tmp_path}#c.png,a.png", 0)] == ["a.png", "c.png"]
    assert [s.id for s in resolve_image_set("sample:8@0#" + resolve_image_set("sample:8@0", 0)[3].id, 5)] == \
        [resolve_image_set("sample:8@0", 0)[3].id]
    with pytest.raises(ValueError, match=r"picks nobody, not an image of the set .*its ids: astronaut, camera"):
        resolve_image_set("sample#nobody", 0)
    with pytest.raises(ValueError, match="picks no id"):
        resolve_image_set("sample#", 0)
