"""``--param``: values parse as JSON, and numbers JSON cannot carry are refused with a clear error."""

from __future__ import annotations

import click
import pytest

from headwater.cli.run import parse_params


def test_values_parse_as_json_or_stay_text() -> None:
    assert parse_params(("n=3", "x=1.5", "ok=true", "xs=[1,2]", "name=etl")) == {
        "n": 3, "x": 1.5, "ok": True, "xs": [1, 2], "name": "etl",
    }


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_naming_the_parameter(raw: str) -> None:
    with pytest.raises(click.BadParameter, match=rf"n={raw}: .* is not a number a flow run can take"):
        parse_params((f"n={raw}",))
    assert parse_params((f'n="{raw}"',)) == {"n": raw}  # quoted, it is text
