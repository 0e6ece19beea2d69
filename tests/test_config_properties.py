"""Hypothesis: any config.json beside real weights is loaded or refused with the project's own error."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentvideo.errors import LatentVideoError
from latentvideo.models import ARCHITECTURES, Critic, load_model, model_config, save_model

KEYS = ["arch", "z_dim", "width", "resolution", "channels", "hidden", "objects", "appearance", "sprite",
        "background", "mapping_layers", "latent_layout", "latentvideo_version", "junk"]  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(sorted(ARCHITECTURES)),
    st.lists(st.integers(-5, 100), max_size=4),
    st.dictionaries(st.sampled_from(["positions", "fold_range", "appearance", "x"]), st.integers(-5, 70), max_size=3),
)
CONFIGS = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8),
    st.lists(st.integers(), max_size=3),
    st.text(max_size=20),
    st.integers(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=CONFIGS)
def test_any_config_json_is_loaded_or_refused_cleanly(config):
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "m"
        critic = Critic(resolution=32, channels=1, width=4)
        save_model(critic, folder, model_config(critic, resolution=32, channels=1, width=4))
        (folder / "config.json").write_text(json.dumps(config, allow_nan=True))
        try:
            load_model(folder)
        except LatentVideoError as e:
            assert "\n" not in str(e)
