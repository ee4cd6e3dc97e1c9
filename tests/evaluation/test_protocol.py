import numpy as np

from spade_tf.config import get_preset
from spade_tf.evaluation import PAPER_RESULTS, segmentation_protocol


def test_coco_keeps_ids_and_ignores_dontcare():
    p = segmentation_protocol(get_preset("coco"))
    assert p.num_classes == 182
    np.testing.assert_array_equal(p.map_labels(np.array([0, 5, 181, 255])), [0, 5, 181, 255])


def test_ade20k_shifts_ids_down_and_ignores_zero():
    p = segmentation_protocol(get_preset("ade20k"))
    assert p.num_classes == 150
    np.testing.assert_array_equal(p.map_labels(np.array([0, 1, 150])), [255, 0, 149])


def test_cityscapes_maps_label_ids_to_train_ids():
    p = segmentation_protocol(get_preset("cityscapes"))
    assert p.num_classes == 19
    # unlabeled, road, sidewalk, parking (ignored), sky, bicycle, license-plate-free max id 33
    np.testing.assert_array_equal(p.map_labels(np.array([0, 7, 8, 9, 23, 33])), [255, 0, 1, 255, 10, 18])
    assert sorted(p.lookup[p.lookup != 255]) == list(range(19))


def test_paper_figures():
    assert PAPER_RESULTS["coco"]["miou"] == 37.4 and PAPER_RESULTS["coco"]["fid"] == 22.6
    assert PAPER_RESULTS["ade20k"]["accuracy"] == 79.9
    assert PAPER_RESULTS["cityscapes"]["fid"] == 71.8
