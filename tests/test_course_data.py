import numpy as np
import pytest

from connlab.data.course import load_course_data
from connlab.data.idx import read_idx
from tests.conftest import SHARED_MNIST


def test_embedded_course_split_is_mnist_first_digits_and_disjoint_validation():
    course = load_course_data()
    assert course.validation == "embedded-rest"
    assert course.data.train_images.shape == (1000, 1, 28, 28)
    assert course.data.test_images.shape == (9000, 1, 28, 28)
    train = {bytes(x.numpy().tobytes()) for x in course.data.train_images}
    assert not any(bytes(x.numpy().tobytes()) in train for x in course.data.test_images[:2000])


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="full MNIST not on this machine")
def test_course_split_equals_mnist_first_1000_and_test_set():
    course = load_course_data(SHARED_MNIST)
    full = read_idx(SHARED_MNIST / "train-images-idx3-ubyte.gz")[:1000]
    full_labels = read_idx(SHARED_MNIST / "train-labels-idx1-ubyte.gz")[:1000]
    assert np.array_equal(course.data.train_images[:, 0].numpy(), full)
    assert np.array_equal(course.data.train_labels.numpy(), full_labels)
    assert course.validation == "mnist-test" and len(course.data.test_images) == 10_000
    # the embedded order gives the same training bytes as the full file
    assert np.array_equal(load_course_data().data.train_images.numpy(), course.data.train_images.numpy())
