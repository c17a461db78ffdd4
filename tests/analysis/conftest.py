import pytest

from ._study_models import rt_design, rt_model


@pytest.fixture
def small_rt():
    return rt_model(), rt_design(12, 8)
