"""benchmark.py --quick: every workload runs and the table is complete (a smoke test, not a timing)."""
import benchmark


def test_quick_benchmark_prints_every_row(capsys):
    assert benchmark.main(['--quick', '--repeats', '1', '--sequence_frames', '3']) == 0
    output = capsys.readouterr().out
    table = [line for line in output.splitlines() if line.startswith('| ') and 'workload' not in line]
    variants = [line.split('|')[2].strip() for line in table]
    assert variants == ['torch', 'tensorflow', 'forward-per-frame', 'balanced', 'recursive', 'direct',
                        'forward-per-pair', 'reuse', 'tiled', 'one-segment', 'one-process', 'ray-2-workers',
                        'resume']
    for line in table:
        seconds = float(line.split('|')[3])
        assert seconds > 0
    assert "TensorFlow's speed" in output and 'forward-per-frame' in output
    assert 'throughput' in output and 'per extra segment' in output and 'Ray workers ready' in output
    assert 'the rerun found' in output


def test_sequence_frames_all_have_the_full_size():
    """The moving pattern once ran out of texture after 11 frames, pairing
    frames of two sizes in workload C."""
    frames = benchmark.frames_of_size(72, 128, count=30)
    assert {tuple(frame.shape) for frame in frames} == {(1, 3, 72, 128)}
