"""The committed part annotations (docs/parts/): the report's --parts format, boxes on the face."""
import os

import numpy as np

from zfraw.viz.datasets import load_part_source, read_parts_file

PARTS = os.path.join(os.path.dirname(__file__), "..", "docs", "parts", "tiny-imagenet-faces.json")


def test_every_face_has_both_eyes_and_the_nose_inside_the_image():
    data = read_parts_file(PARTS)
    assert len(data) >= 20
    for file, parts in data.items():
        assert file.startswith("val/images/val_") and file.endswith(".JPEG")
        assert set(parts) == {"left eye", "right eye", "nose"}, file
        for box in parts.values():
            assert 0 <= box[0] < box[2] <= 64 and 0 <= box[1] < box[3] <= 64, (file, box)
        # the animal's own left eye appears on the image's right in a frontal face
        centre = {k: (v[0] + v[2]) / 2 for k, v in parts.items()}
        assert centre["left eye"] > centre["right eye"], file


def test_annotations_load_as_a_part_source_on_the_real_images(zfraw_data):
    root = os.path.join(zfraw_data, "tiny-imagenet-100-full")
    source = load_part_source(PARTS, f"tiny-imagenet:{root}", crop=64, size=72,
                              mean=np.zeros((72, 72, 3), np.float32))
    assert len(source) == len(read_parts_file(PARTS))
    names = {source.names[c].split(",")[0] for c in np.unique(source.labels)}
    assert names == {"golden retriever", "German shepherd", "Chihuahua", "tabby", "Egyptian cat"}
    assert all(len(p) == 3 for p in source.parts)    # no part fell outside the centre crop
