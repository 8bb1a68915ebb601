"""Scalar logs that TensorBoard reads, written without TensorBoard or TensorFlow installed.

A TensorBoard log is a file ``events.out.tfevents.<time>.<host>`` of records
(TFRecord framing: length, masked CRC-32C of the length, data, masked CRC-32C
of the data), each a serialized ``tensorflow.Event`` protocol buffer. The
first event carries the file version; each scalar is an event with the step,
the wall time and a ``Summary`` holding one ``simple_value``. Only those few
protobuf fields are encoded here, by hand.

A resumed run starts its file with ``restart(step)``: a ``SessionLog`` with
status START at the resumed step. TensorBoard (file version 2) then drops
the events of earlier files at that step or later: the steps a killed run
logged after its last checkpoint, which the resumed run computes again.
"""
import os
import socket
import struct
import time

_CRC_TABLE = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0x82F63B78 if _crc & 1 else _crc >> 1
    _CRC_TABLE.append(_crc)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        bits, value = value & 0x7F, value >> 7
        out.append(bits | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # length-delimited field
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(step: int, wall_time: float, body: bytes) -> bytes:
    return b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step) + body


class EventWriter:
    """``scalar(tag, value, step)`` into a new event file in ``folder``."""

    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = os.path.join(folder, name)
        self.file = open(self.path, "ab")
        self._write(_event(0, time.time(), _field(3, b"brain.Event:2")))

    def _write(self, data: bytes) -> None:
        length = struct.pack("<Q", len(data))
        self.file.write(length + struct.pack("<I", _masked(crc32c(length))) + data
                        + struct.pack("<I", _masked(crc32c(data))))

    def restart(self, step: int) -> None:
        """SessionLog START at ``step``: TensorBoard forgets what earlier files logged at ``step`` or later."""
        self._write(_event(step, time.time(), _field(7, b"\x08\x01")))  # Event.session_log {status: START}

    def scalar(self, tag: str, value: float, step: int) -> None:
        value_message = _field(1, tag.encode("utf-8")) + b"\x15" + struct.pack("<f", float(value))
        self._write(_event(step, time.time(), _field(5, _field(1, value_message))))

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()
