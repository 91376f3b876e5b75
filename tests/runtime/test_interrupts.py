"""Signals become interruptions at safe points, and the handlers before them are restored or passed on."""

import os
import signal
import time

import pytest

from imdb_exp.runtime.interrupts import Interrupted, Interrupts, held_off
from imdb_exp.runtime.interrupts import reason as interrupt_reason


def test_a_signal_outside_keras_interrupts_at_once_and_the_handlers_are_restored_after():
    before = signal.getsignal(signal.SIGTERM)
    with Interrupts().handled(), pytest.raises(Interrupted) as raised:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert raised.value.signal == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_error_in_the_clean_up_of_a_step_a_signal_cut_short_is_that_signal():
    """Keras's save cut by SIGINT can close its file twice (OSError: Bad file descriptor, seen once in
    145 saves cut at random): the interrupt is what the command must act on, the error its context."""
    with pytest.raises(Interrupted) as raised, Interrupts().handled():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            raise OSError(9, "Bad file descriptor")
    assert raised.value.signal == signal.SIGTERM and isinstance(raised.value.__context__, OSError)


def test_a_signal_in_a_held_off_step_waits_for_its_end_then_interrupts():
    steps_done = []
    with Interrupts().handled(), pytest.raises(Interrupted) as raised:
        with held_off():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            steps_done.append("the step's end")
        steps_done.append("after it")
    assert steps_done == ["the step's end"] and raised.value.signal == signal.SIGTERM


def test_a_schedulers_usr2_ends_the_run_first_then_reaches_the_schedulers_handler():
    received = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))  # as submitit's
    try:
        interrupts = Interrupts()
        with interrupts.handled(), pytest.raises(Interrupted) as raised:
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(5)
        assert raised.value.signal == signal.SIGUSR2 and received == []
        assert "SIGUSR2" in interrupt_reason(raised.value) and "requeue" in interrupt_reason(raised.value)
        interrupts.pass_on(signal.SIGUSR2)
        assert received == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_without_a_schedulers_handler_usr2_is_left_alone():
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL
    with Interrupts().handled():
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL


def test_a_sigint_ignored_at_start_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with Interrupts().handled():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
