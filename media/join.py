"""Joining a job's chunks into its output: video chunks by packet copy with the source's audio, PNG chunks by links.

Video chunks (``join_video``) hold consecutive output frames of one
encoding, each starting with a keyframe (``writers``); their packets are
copied, not re-encoded, and restamped exactly from the frame numbers. The
source's audio streams are read from the source file and interleaved by
time (``audio``). PNG chunks (``join_png_folders``) are folders of
numbered frames, linked (or copied) into the output folder. Either output
appears atomically (``destination``).
"""
from __future__ import annotations

import contextlib
import heapq
import os
import shutil
from fractions import Fraction
from typing import Iterator, List, Optional, Sequence

import av

from media.audio import AudioTransfer
from media.destination import Destination
from media.encoding import VIDEO_FORMATS, VideoEncoding
from media.errors import MediaError


def _chunk_pts(path: str) -> List[Fraction]:
    """The presentation times (seconds) of a video chunk's packets, in decode order."""
    with av.open(path) as chunk:
        stream = chunk.streams.video[0]
        return [Fraction(packet.pts * stream.time_base) for packet in chunk.demux(stream)
                if packet.size and packet.pts is not None]


def _video_packets(chunk_paths: Sequence[str], first_outputs: Sequence[int], rate: Fraction,
                   output_stream) -> Iterator[tuple]:
    """(time in seconds, packet) of every chunk's video, in order, stamped for the output stream.

    A chunk holds the consecutive output frames from ``first_outputs[k]`` on,
    so its i-th smallest pts is frame first + i: timestamps are set from that
    (exact, whatever the chunk container rounded them to). Decode times are
    the sorted frame numbers moved back by the largest reordering delay of
    any chunk, so they increase across the joins and never pass a pts.
    """
    chunks = [_chunk_pts(path) for path in chunk_paths]
    delay = 0
    for stamps in chunks:
        order = {stamp: i for i, stamp in enumerate(sorted(stamps))}
        delay = max([delay] + [order[stamps[j]] - j for j in range(len(stamps))] +
                    [j - order[stamps[j]] for j in range(len(stamps))])
    time_base = 1 / rate
    for path, first, stamps in zip(chunk_paths, first_outputs, chunks):
        order = {stamp: i for i, stamp in enumerate(sorted(stamps))}
        with av.open(path) as chunk:
            stream = chunk.streams.video[0]
            j = 0
            for packet in chunk.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                index = first + order[stamps[j]]
                packet.pts, packet.dts, packet.duration = index, first + j - delay, 1
                packet.time_base = time_base
                packet.stream = output_stream
                j += 1
                yield Fraction(packet.dts) * time_base, packet


def _audio_packets(container, streams, offset: Fraction) -> Iterator[tuple]:
    if not streams:
        return
    try:
        for packet in container.demux(list(streams)):
            if packet.size == 0:
                continue
            stamp = packet.dts if packet.dts is not None else packet.pts
            moment = Fraction(stamp * packet.time_base) - offset if stamp is not None else Fraction(0)
            yield moment, packet
    except av.FFmpegError:
        pass  # a cut-short source: its sound ends where reading stops, as its picture does


def join_video(chunk_paths: Sequence[str], first_outputs: Sequence[int], rate: Fraction, save_path: str,
               source_path: Optional[str], start: Fraction, encoding: Optional[VideoEncoding] = None) -> List[str]:
    """Joins video chunks by packet copy into ``save_path`` with the source's audio; returns audio notes.

    ``first_outputs``: each chunk's first frame number; ``start``: the source
    time that is 0 in the output (the first frame's). ``encoding``: the
    chunks' (None: the default), for what the output's container says of
    the stream (``VideoEncoding.stream_tag``), as the direct writer says it.
    """
    container_format = VIDEO_FORMATS[os.path.splitext(save_path)[1].lower()]
    options = {"movflags": "+faststart"} if container_format in ("mp4", "mov") else {}
    destination = Destination(save_path, is_folder=False)
    notes: List[str] = []
    try:
        with contextlib.ExitStack() as stack:
            output = stack.enter_context(av.open(destination.temporary, mode="w", format=container_format,
                                                 options=options))
            first = stack.enter_context(av.open(chunk_paths[0]))
            # opaque: the codec parameters as they are, with no encoder opened (a decoder-only
            # name such as libdav1d has none).
            video = output.add_stream_from_template(first.streams.video[0], opaque=True)
            video.time_base = 1 / rate
            tag = (encoding or VideoEncoding()).stream_tag(container_format)
            if tag is not None:
                video.codec_tag = tag
            audio = None
            source = None
            if source_path is not None:
                source = stack.enter_context(av.open(source_path))
                if source.streams.audio:
                    audio = AudioTransfer(list(source.streams.audio), output, offset=start)
            streams = list(source.streams.audio) if audio is not None else []
            pictures = _video_packets(chunk_paths, first_outputs, rate, video)
            merged = heapq.merge(((moment, 0, packet) for moment, packet in pictures),
                                 ((moment, 1, packet) for moment, packet in _audio_packets(source, streams, start)),
                                 key=lambda item: (item[0], item[1]))
            for _, kind, packet in merged:
                if kind == 0:
                    output.mux(packet)
                else:
                    audio.send(packet)
            if audio is not None:
                audio.finish()
                notes = ([f"copied {', '.join(audio.copied)}"] if audio.copied else []) + \
                        ([f"re-encoded to AAC {', '.join(audio.reencoded)}"] if audio.reencoded else [])
        destination.commit()
    except BaseException as error:
        destination.discard()
        if isinstance(error, (av.FFmpegError, OSError)) and not isinstance(error, MediaError):
            raise MediaError(f"cannot join the chunks into {save_path}: {error}") from None
        raise
    return notes


def join_png_folders(chunk_folders: Sequence[str], save_path: str) -> None:
    """Links (or copies) the chunks' numbered PNG frames into the output folder, atomically."""
    destination = Destination(save_path, is_folder=True)
    try:
        for folder in chunk_folders:
            for name in sorted(os.listdir(folder)):
                source, target = os.path.join(folder, name), os.path.join(destination.temporary, name)
                try:
                    os.link(source, target)  # the chunks stay intact until the join has succeeded
                except OSError:
                    shutil.copy2(source, target)
        destination.commit()
    except BaseException:
        destination.discard()
        raise
