"""The neutral reference's wait (stream/reference.py), on plain numbers."""

from __future__ import annotations

from stream.reference import ReferenceWait


def test_the_first_frame_facing_the_camera_may_be_the_reference() -> None:
    wait = ReferenceWait(max_yaw=0.06, wait_s=2.0)
    assert not wait.may_take(0.0, 0.12)
    assert not wait.may_take(1.0, -0.07)
    assert wait.may_take(1.5, -0.05)


def test_after_the_wait_a_turned_frame_is_taken_and_a_restart_waits_again() -> None:
    wait = ReferenceWait(max_yaw=0.06, wait_s=2.0)
    assert not wait.may_take(10.0, 0.15)  # the first frame offered starts the wait
    assert not wait.may_take(11.9, 0.15)
    assert wait.may_take(12.0, 0.15)
    wait.restart()
    assert not wait.may_take(30.0, 0.15)  # a new wait, from the next frame offered
    assert wait.may_take(32.0, 0.15)
