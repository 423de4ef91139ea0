"""The in-process limiter's windows, with a clock the test moves."""

from __future__ import annotations

from origin.ratelimit import InProcessLimiter


async def test_window_opens_at_first_hit_and_resets() -> None:
    now = [1000.0]
    limiter = InProcessLimiter(clock=lambda: now[0])
    decisions = [await limiter.hit("k", 2) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert [d.remaining for d in decisions] == [1, 0, 0]
    assert decisions[0].reset_seconds == 60
    now[0] += 59.5
    blocked = await limiter.hit("k", 2)
    assert not blocked.allowed and blocked.reset_seconds == 1
    assert (await limiter.hit("other", 2)).allowed
    now[0] += 1
    again = await limiter.hit("k", 2)
    assert again.allowed and again.remaining == 1 and again.reset_seconds == 60


async def test_stale_keys_are_pruned() -> None:
    now = [0.0]
    limiter = InProcessLimiter(clock=lambda: now[0])
    for i in range(100):
        await limiter.hit(f"k{i}", 5)
    now[0] += 61
    await limiter.hit("fresh", 5)
    assert list(limiter.windows) == ["fresh"]


async def test_peek_says_whether_one_more_hit_would_pass_without_counting() -> None:
    now = [1000.0]
    limiter = InProcessLimiter(clock=lambda: now[0])
    fresh = await limiter.peek("k", 2)
    assert fresh.allowed and fresh.remaining == 2 and fresh.reset_seconds == 60
    assert "k" not in limiter.windows  # nothing was counted
    await limiter.hit("k", 2)
    now[0] += 10
    once = await limiter.peek("k", 2)
    assert once.allowed and once.remaining == 1 and once.reset_seconds == 50
    await limiter.hit("k", 2)
    full = [await limiter.peek("k", 2) for _ in range(3)]
    assert [(d.allowed, d.remaining) for d in full] == [(False, 0)] * 3
    now[0] += 50
    assert (await limiter.peek("k", 2)).remaining == 2  # the window is over


async def test_reset_is_never_above_the_window() -> None:
    # (x + 60) - x is 60.000000000000x for some clock values: it must still say 60, not 61.
    start = 8161.962517661547
    assert (start + 60) - start > 60
    limiter = InProcessLimiter(clock=lambda: start)
    assert (await limiter.hit("k", 3)).reset_seconds == 60
    assert (await limiter.peek("k", 3)).reset_seconds == 60
