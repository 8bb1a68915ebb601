"""Reading and writing media: still images, frame sources, video encodings, writers, audio, the chunk join.

No module of this package imports torch. Each module is one concern:

- ``errors``: the exceptions below, and the notices given once.
- ``images``: reading still images; the names of numbered PNG frames.
- ``samples``: converting pixels between float32 and uint8 / uint16 samples.
- ``encoding``: the codec and colour catalogue (``VideoEncoding``,
  ``choose_encoding``) and the output kinds.
- ``sources``: a video or a folder of frames as timed, upright frames.
- ``writers``: atomic destinations, and the video / GIF / PNG folder writers.
- ``audio``: a video's audio streams copied or re-encoded into an output.
- ``join``: video chunks joined by packet copy with the source's audio;
  PNG chunks linked into one folder.

Conventions used throughout the package:

- Pixels are numpy arrays of shape (H, W, 3), RGB, in one of three kinds:
  float32 in [0, 1] (images read, and what the model sees); uint8; or
  uint16 on the full 16-bit scale (0-65535, as FFmpeg widens 10 or 12-bit
  samples) for sources and outputs deeper than 8 bits. ``samples``
  converts between them (clamping and rounding to nearest); 8-bit values
  stay exact through every conversion. A writer's ``sample_dtype`` says
  which integer kind it takes; a writer of d bits rounds 16-bit samples to
  d bits (``samples.round_to_bits``).
- Frame rates and times are exact ``fractions.Fraction`` values (e.g.
  ``Fraction(30000, 1001)`` fps; seconds). A video frame's time is its pts
  times its stream's time base, as stored in the file; a folder's frame i
  is at i / folder_fps; output frame n of a writer is at
  (first_index + n) / fps.
- Frames are delivered upright: a video's display matrix and an image's
  EXIF orientation are applied to the pixels.
- How a video is encoded (codec, quality, depth, colour tags) is one
  ``encoding.VideoEncoding`` value; the default is H.264 CRF 18, 8-bit
  4:2:0, BT.709 limited range. Every writer of one encoding starts with a
  keyframe and carries the same codec parameters, so parts of a sequence
  written separately can be joined by copying packets (``join``).
- Outputs appear atomically: writers write to a hidden temporary file or
  folder beside the destination and rename it into place when closed; an
  abort (or any exception inside a ``with`` block, KeyboardInterrupt
  included) removes it, together with the folders created for it.
- Errors: a problem caused by the user's files or paths raises
  ``errors.MediaError`` (``ImageReadError`` for input images,
  ``OutputError`` for destinations) with a one-line message; wrong use by
  the calling code (a frame of the wrong shape, a negative fps...) raises
  ValueError. Notices (alpha dropped, odd size padded...) go to the
  ``film`` logger, as warnings.
"""
