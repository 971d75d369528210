"""What a step costs, and what the cheaper paths must still give: the statements of
submitting and approving (SQLite, where the engine's own statements are fixed), and the
view the applicant gets on submitting, the same as anyone reads back afterwards."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from tests.apps.services.conftest import City
from tests.apps.services.test_flow import apply, by_matter, upload_all
from xietong.apps.services import applications, workbench

OUTPUTS = {
    "WJW-CSYXZM": ("wjw", {"birth_cert_no": "T1"}),
    "GA-CSDJ": ("ga", {"id_number": "430102202611200011"}),
    "YB-CXJMCB": ("yb", {"insurance_no": "YB1"}),
    "RS-SBKSL": ("rs", {"card_no": "SB1"}),
}


@contextmanager
def counted(city: City) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(city.ctx.db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(city.ctx.db.engine, "before_cursor_execute", count)


def test_the_submitted_view_is_the_one_read_back(city: City) -> None:
    view = apply(city)
    assert view.created
    again = applications.get_application(city.ctx, city.actor("citizen"), view.number)
    assert dataclasses.replace(view, created=False) == again


def test_the_view_after_each_step_matches_what_the_clerk_sees(city: City) -> None:
    view = apply(city)
    for code, sub in by_matter(view).items():
        key, outputs = OUTPUTS[code]
        clerk = city.actor(f"{key}.clerk")
        workbench.approve(city.ctx, clerk, sub.id, outputs=outputs)
        detail = workbench.get_sub_case(city.ctx, clerk, sub.id)
        now = by_matter(applications.get_application(city.ctx, city.actor("citizen"), view.number))
        assert detail.item.status == now[code].status == "concluded"
        assert detail.outputs == now[code].outputs == outputs
        assert detail.item.department_name == now[code].department_name
        assert detail.task_id is None and not detail.can_act
    final = applications.get_application(city.ctx, city.actor("citizen"), view.number)
    assert final.status == "delivered" and len(final.documents) == 5


def test_statements_per_step(city: City) -> None:
    if not city.ctx.db.is_sqlite:
        pytest.skip("the counts are SQLite's (PostgreSQL locks with statements of its own)")
    materials = upload_all(city)
    actor = city.actor("citizen")
    with counted(city) as submitting:
        view = applications.submit(city.ctx, actor, "birth", _form(), materials, "k-count")
    steps = []
    for code, sub in by_matter(view).items():
        key, outputs = OUTPUTS[code]
        clerk = city.actor(f"{key}.clerk")
        with counted(city) as approving:
            workbench.approve(city.ctx, clerk, sub.id, outputs=outputs)
        steps.append(len(approving))
    # were 27 and 17, 17, 14, 18 (the last approval delivers) before a step read its
    # sub-cases, departments, process definitions and open task together and the
    # submitter's view was built from what the submission wrote
    assert len(submitting) <= 17, submitting
    assert all(n <= bound for n, bound in zip(steps, [9, 9, 7, 13], strict=True)), steps


def _form() -> dict:
    from tests.apps.services.conftest import BIRTH_FORM

    return dict(BIRTH_FORM)
