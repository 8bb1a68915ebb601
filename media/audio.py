"""Carrying a video's audio streams into an output, in sync with its video (``AudioTransfer``).

A stream is copied unchanged when the output container accepts its codec,
and re-encoded to AAC otherwise. Timestamps are shifted by the offset that
makes the first video frame time 0, so picture and sound stay in sync;
sound from before the first video frame is left out. The chunk join
(``join``) demuxes the source's audio and sends it here.
"""
from __future__ import annotations

from fractions import Fraction
from typing import List, Optional, Sequence

import av
import numpy as np

from media.errors import MediaError, describe_av_error

# Audio codecs that MP4 and MOV outputs take unchanged; Matroska takes whatever
# FFmpeg can put in it. MP4 could technically hold Opus or FLAC too, but many
# players cannot play them there, so those are re-encoded.
_COPYABLE_AUDIO = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "alac"},
    "mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be"},
}
AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
AAC_BITS_PER_SECOND_PER_CHANNEL = 96_000


class _CopiedStream:
    """Packets of one input stream muxed unchanged into one output stream."""

    def __init__(self, source, output, offset: Fraction):
        self.source, self.output = source, output
        self.time_base = Fraction(source.time_base)
        self.offset_ticks = round(offset / self.time_base)
        self.held = None        # latest packet ending before the video starts
        self.started = False

    def send(self, packet, mux) -> None:
        if packet.pts is not None:
            packet.pts -= self.offset_ticks
        if packet.dts is not None:
            packet.dts -= self.offset_ticks
        if not self.started:
            start = packet.pts if packet.pts is not None else packet.dts
            if start is not None and start + (packet.duration or 0) <= 0:
                # Sound from before the first video frame is left out, except
                # the last packet: AAC and MP3 decoders need the packet before
                # the first one they play (MP4 files even start with such a
                # "priming" packet at a negative time).
                self.held = packet
                return
            self.started = True
            if self.held is not None:
                self._mux(self.held, mux)
                self.held = None
        self._mux(packet, mux)

    def _mux(self, packet, mux) -> None:
        packet.stream = self.output
        mux(packet)

    def finish(self, mux) -> None:
        pass


class _ReencodedStream:
    """Packets of one input stream decoded and encoded to AAC, cut to start with the video."""

    def __init__(self, source, output, offset: Fraction):
        self.source, self.output = source, output
        self.offset = offset
        self.decoder = source.codec_context
        self.next_start: Optional[Fraction] = None  # input time at which the previous frame ended

    def send(self, packet, mux) -> None:
        for frame in self.decoder.decode(packet):
            self._encode(frame, mux)

    def _encode(self, frame, mux) -> None:
        rate = frame.sample_rate
        if frame.pts is not None and frame.time_base is not None:
            start = frame.pts * Fraction(frame.time_base)
            # Container timestamps can be coarser than a sample (1 ms in
            # Matroska): a frame stamped within a tick of where the previous
            # one ended follows on from it exactly, so the sound stays
            # seamless and is cut at the right sample.
            tolerance = max(Fraction(frame.time_base), Fraction(1, rate))
            if self.next_start is not None and abs(start - self.next_start) <= tolerance:
                start = self.next_start
            self.next_start = start + Fraction(frame.samples, rate)
            start -= self.offset
            skip = max(0, round(-start * rate))
            if skip >= frame.samples:
                return
            if skip:
                frame, start = self._without_first_samples(frame, skip), start + Fraction(skip, rate)
            frame.time_base = Fraction(1, rate)
            frame.pts = round(start * rate)
        for packet in self.output.encode(frame):
            mux(packet)

    @staticmethod
    def _without_first_samples(frame, skip: int):
        """The frame without its first ``skip`` samples (the sound from before the first video frame)."""
        samples = frame.to_ndarray()
        if frame.format.is_planar:   # (channels, samples)
            kept = samples[:, skip:]
        else:                        # (1, samples * channels), interleaved
            channels = len(frame.layout.channels)
            kept = samples.reshape(-1, channels)[skip:].reshape(1, -1)
        trimmed = av.AudioFrame.from_ndarray(np.ascontiguousarray(kept), format=frame.format.name,
                                             layout=frame.layout.name)
        trimmed.sample_rate = frame.sample_rate
        return trimmed

    def finish(self, mux) -> None:
        for frame in self.decoder.decode(None):
            self._encode(frame, mux)
        for packet in self.output.encode(None):
            mux(packet)


class AudioTransfer:
    """Carries the audio streams of a video into an output container, in sync with its video.

    ``offset`` is the input time that becomes time 0 of the output (the first
    video frame's time). Streams are added to ``container`` here, so this must
    be created before the first packet is muxed. Send every demuxed audio
    packet to ``send``, then call ``finish``.
    """

    def __init__(self, streams: Sequence, container, offset: Fraction):
        self.container = container
        self.copied: List[str] = []
        self.reencoded: List[str] = []
        self._streams = {}
        format_name = container.format.name.split(",")[0]
        copyable = _COPYABLE_AUDIO.get(format_name)
        if copyable is None:
            copyable = container.supported_codecs
        for stream in streams:
            codec = stream.codec_context.codec.canonical_name
            label = f"#{stream.index} {codec}"
            if codec in copyable:
                output = container.add_stream_from_template(stream)
                self._streams[stream.index] = _CopiedStream(stream, output, offset)
                self.copied.append(label)
            else:
                output = self._add_aac_stream(stream)
                self._streams[stream.index] = _ReencodedStream(stream, output, offset)
                self.reencoded.append(label)

    def _add_aac_stream(self, source):
        rate = source.codec_context.sample_rate
        if rate not in AAC_SAMPLE_RATES:
            rate = 48000
        channels = source.codec_context.channels or 2
        layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(channels, "stereo")
        output = self.container.add_stream("aac", rate=rate, layout=layout)
        output.bit_rate = AAC_BITS_PER_SECOND_PER_CHANNEL * min(channels, len(av.AudioLayout(layout).channels))
        language = source.metadata.get("language")
        if language:
            output.metadata["language"] = language
        return output

    def send(self, packet) -> None:
        try:
            self._streams[packet.stream.index].send(packet, self.container.mux)
        except av.FFmpegError as error:
            raise MediaError(f"cannot carry over audio stream #{packet.stream.index}: "
                             f"{describe_av_error(error)}") from None

    def finish(self) -> None:
        try:
            for stream in self._streams.values():
                stream.finish(self.container.mux)
        except av.FFmpegError as error:
            raise MediaError(f"cannot finish the audio: {describe_av_error(error)}") from None
