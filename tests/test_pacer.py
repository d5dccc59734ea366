from reconciler.pacer import MIN_RATE_PER_SECOND, Pacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_unlimited_until_throttled():
    t = FakeTime()
    pacer = Pacer(None, clock=t.clock, sleep=t.sleep)
    for _ in range(100):
        pacer.acquire()
    assert t.slept == [] and pacer.rate is None


def test_cap_spaces_submissions_evenly():
    t = FakeTime()
    pacer = Pacer(60, clock=t.clock, sleep=t.sleep)  # one per second
    for _ in range(5):
        pacer.acquire()
    assert t.now == 4.0  # first goes at once, then one each second


def test_throttle_halves_the_rate_and_success_recovers_up_to_the_cap():
    t = FakeTime()
    pacer = Pacer(60, clock=t.clock, sleep=t.sleep)
    pacer.on_throttle()
    assert pacer.rate == 0.5 and pacer.throttled == 1
    for _ in range(100):
        pacer.on_success()
    assert pacer.rate == 1.0


def test_throttle_without_cap_uses_the_observed_rate_and_has_a_floor():
    t = FakeTime()
    pacer = Pacer(None, clock=t.clock, sleep=t.sleep)
    for _ in range(40):
        pacer.acquire()  # 40 in the last 10 s: 4/s observed
    pacer.on_throttle()
    assert pacer.rate == 2.0
    for _ in range(20):
        pacer.on_throttle()
    assert pacer.rate == MIN_RATE_PER_SECOND
    before = t.now
    pacer.acquire()
    pacer.acquire()
    assert t.now - before >= 1 / MIN_RATE_PER_SECOND
