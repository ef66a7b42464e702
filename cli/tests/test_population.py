"""The demo population: deterministic, valid and consistent NIKs/KKs from real region codes."""

from __future__ import annotations

from lokal import normalize_phone, parse_nik
from puskesos_cli.scenario.population import generate
from puskesos_shared.contracts.intake import Household
from puskesos_shared.regions import district_of, village_exists, villages_of


def test_the_same_seed_gives_the_same_population() -> None:
    assert list(generate(300, seed=7)) == list(generate(300, seed=7))
    assert list(generate(300, seed=7)) != list(generate(300, seed=8))


def test_every_household_is_valid_under_the_contract_and_consistent() -> None:
    families = list(generate(1_000, seed=2022))
    niks = [m.nik for f in families for m in f.members]
    assert len(set(niks)) == len(niks)
    assert len({f.kk_number for f in families}) == len(families)
    for family in families:
        body = family.registration()
        body["phone"] = normalize_phone(body["phone"]) if body["phone"] else None
        household = Household.model_validate(body)
        assert village_exists(family.village_code)
        district_digits = district_of(family.village_code).replace(".", "")
        assert family.kk_number.startswith(district_digits)
        for member in household.members:
            info = parse_nik(member.nik)
            assert info.valid
            assert member.nik.startswith(district_digits)
            assert info.birth_date == member.birth_date.isoformat()
            assert info.gender == member.sex.value


def test_it_covers_every_kelurahan_of_kota_malang_and_jember_villages() -> None:
    assert {f.village_code for f in generate(57, seed=1)} == set(villages_of("35.73"))
    jember = list(generate(248, seed=1, regency="35.09"))
    assert {f.village_code for f in jember} == set(villages_of("35.09"))
    assert len(villages_of("35.09")) == 248
