from __future__ import annotations

import torch

from speechae import sharing


def test_threads_give_way_to_other_processes_and_come_back_when_they_are_gone(tmp_path, monkeypatch):
    load = tmp_path / "loadavg"
    clock = iter(range(100))
    monkeypatch.setattr(sharing.time, "monotonic", lambda: float(next(clock)))  # a reading each call
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        sharing.share_cores(2, source=str(load))
        load.write_text("3.90 2.10 1.00 4/312 4242\n")  # our two threads and two of another run
        sharing.check()
        assert torch.get_num_threads() == 2  # one reading is not enough
        sharing.check()
        assert torch.get_num_threads() == 1
        load.write_text("1.00 1.50 1.00 3/312 4242\n")  # still another run's two threads
        sharing.check()
        sharing.check()
        assert torch.get_num_threads() == 1
        load.write_text("0.90 1.50 1.00 1/310 4242\n")  # alone again
        sharing.check()
        sharing.check()
        assert torch.get_num_threads() == 2
        load.write_text("not a load average")
        sharing.check()
        sharing.check()
        assert torch.get_num_threads() == 2
        sharing.stop_sharing()
        load.write_text("3.90 2.10 1.00 9/312 4242\n")
        sharing.check()
        sharing.check()
        assert torch.get_num_threads() == 2  # left alone once sharing stops
    finally:
        sharing.stop_sharing()
        torch.set_num_threads(before)
