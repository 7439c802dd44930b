from agora.engine.seeding import Seeds


def test_a_named_stream_is_the_same_every_time():
    assert Seeds(7).rng("activation", 3).random() == Seeds(7).rng("activation", 3).random()
    assert Seeds(7).integer("sampling", 1, 2, 0) == Seeds(7).integer("sampling", 1, 2, 0)


def test_streams_differ_by_name_key_and_seed():
    draws = {
        Seeds(7).rng("activation", 3).random(),
        Seeds(7).rng("activation", 4).random(),
        Seeds(7).rng("conflicts", 3).random(),
        Seeds(8).rng("activation", 3).random(),
    }
    assert len(draws) == 4


def test_drawing_from_one_stream_does_not_shift_another():
    seeds = Seeds(11)
    expected = Seeds(11).rng("conflicts", 0).random()
    seeds.rng("activation", 0).random(1000)
    assert seeds.rng("conflicts", 0).random() == expected


def test_sampling_seeds_fit_in_31_bits():
    values = [Seeds(s).integer("sampling", a) for s in range(5) for a in range(50)]
    assert all(0 <= v < 2**31 for v in values)
    assert len(set(values)) == len(values)
