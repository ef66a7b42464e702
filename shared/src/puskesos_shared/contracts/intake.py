"""Events of the intake service: the household registry (pendataan) and complaints (keluhan)."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import ClassVar, Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from .envelope import Contract, Event
from .primitives import (
    NIK,
    KKNumber,
    LongText,
    Rupiah,
    Sex,
    ShortText,
    VillageCode,
    WhatsAppPhone,
    personal,
)


class Relationship(StrEnum):
    """Hubungan dalam keluarga, as printed on the KK."""

    HEAD = "kepala_keluarga"
    SPOUSE = "pasangan"
    CHILD = "anak"
    CHILD_IN_LAW = "menantu"
    GRANDCHILD = "cucu"
    PARENT = "orang_tua"
    PARENT_IN_LAW = "mertua"
    OTHER_RELATIVE = "famili_lain"
    OTHER = "lainnya"


class Disability(StrEnum):
    NONE = "none"
    PHYSICAL = "physical"
    INTELLECTUAL = "intellectual"
    MENTAL = "mental"
    SENSORY = "sensory"
    MULTIPLE = "multiple"


class FloorType(StrEnum):
    EARTH = "tanah"
    BAMBOO = "bambu"
    WOOD = "kayu"
    CEMENT = "semen"
    TILE = "keramik"


class WallType(StrEnum):
    BAMBOO = "bambu"
    WOOD = "kayu"
    UNPLASTERED_BRICK = "tembok_tanpa_plester"
    PLASTERED_BRICK = "tembok"


class RoofType(StrEnum):
    THATCH = "ijuk_rumbia"
    ZINC = "seng"
    ASBESTOS = "asbes"
    CLAY_TILE = "genteng"
    CONCRETE = "beton"


class WaterSource(StrEnum):
    RIVER = "sungai"
    UNPROTECTED_WELL = "sumur_tidak_terlindungi"
    PROTECTED_WELL = "sumur_terlindungi"
    PUBLIC_TAP = "keran_umum"
    PIPED = "pdam"
    BOTTLED = "air_kemasan"


class Electricity(StrEnum):
    NONE = "none"
    SHARED = "shared"  # numpang tetangga
    VA_450 = "450VA"
    VA_900 = "900VA"
    VA_1300_PLUS = "1300VA+"


class Asset(StrEnum):
    MOTORCYCLE = "motorcycle"
    CAR = "car"
    REFRIGERATOR = "refrigerator"
    LAND = "land"
    LIVESTOCK = "livestock"
    GOLD = "gold"
    SMARTPHONE = "smartphone"


class Member(Contract):
    nik: NIK
    name: ShortText = Field(json_schema_extra=personal())
    birth_date: dt.date = Field(json_schema_extra=personal())
    sex: Sex
    relationship: Relationship
    disability: Disability = Disability.NONE
    occupation: str = Field(default="", max_length=100, json_schema_extra=personal())  # free text


class Address(Contract):
    village_code: VillageCode
    street: str = Field(default="", max_length=200, json_schema_extra=personal())
    rt: str = Field(default="", pattern=r"^([0-9]{1,3})?$", description="Rukun Tetangga number",
                    json_schema_extra=personal())
    rw: str = Field(default="", pattern=r"^([0-9]{1,3})?$", description="Rukun Warga number",
                    json_schema_extra=personal())


class SocioEconomic(Contract):
    """Indicators the assessment rules weigh (DTKS-style)."""

    monthly_income: Rupiah
    floor: FloorType
    wall: WallType
    roof: RoofType
    water: WaterSource
    electricity: Electricity
    assets: tuple[Asset, ...] = ()
    dependants: int = Field(ge=0, le=30)


class Household(Contract):
    """A family as on its family card (KK), with the data assessment needs."""

    kk_number: KKNumber
    address: Address
    members: tuple[Member, ...] = Field(min_length=1, max_length=30)
    socio_economic: SocioEconomic
    phone: WhatsAppPhone | None = None

    @model_validator(mode="after")
    def _one_head_unique_niks(self) -> Self:
        heads = [m for m in self.members if m.relationship is Relationship.HEAD]
        if len(heads) != 1:
            raise ValueError(f"a household has exactly one head (kepala_keluarga), found {len(heads)}")
        niks = [m.nik for m in self.members]
        if len(set(niks)) != len(niks):
            raise ValueError("a NIK appears twice in the household")
        return self

    @property
    def head(self) -> Member:
        return next(m for m in self.members if m.relationship is Relationship.HEAD)


class DataWarning(Contract):
    """A fact accepted with a warning (e.g. a NIK whose birth date disagrees with the member's)."""

    code: str = Field(min_length=1, max_length=50)
    field: str = Field(min_length=1, max_length=100)
    message: str = Field(min_length=1, max_length=500, json_schema_extra=personal())  # may quote the data


class HouseholdChangeKind(StrEnum):
    UPDATE = "update"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"


class HouseholdRegisteredData(Contract):
    household_id: uuid.UUID
    household: Household
    warnings: tuple[DataWarning, ...] = ()
    revision: int = Field(ge=1, description="Starts at 1; each change adds one")


class HouseholdUpdatedData(Contract):
    household_id: uuid.UUID
    household: Household
    change: HouseholdChangeKind
    changed_fields: tuple[str, ...] = Field(min_length=1, description="Dotted paths of the fields that changed")
    transferred_nik: NIK | None = Field(default=None, description="For transfers: the member who moved")
    counterpart_kk: KKNumber | None = Field(default=None, description="For transfers: the other household")
    warnings: tuple[DataWarning, ...] = ()
    revision: int = Field(ge=2)


class HouseholdRegistered(Event):
    PRODUCER: ClassVar[str] = "intake"
    SUBJECT_NAME: ClassVar[str] = "household_registered"
    event_type: Literal["HouseholdRegistered"] = "HouseholdRegistered"
    schema_version: Literal[1] = 1
    data: HouseholdRegisteredData


class HouseholdUpdated(Event):
    PRODUCER: ClassVar[str] = "intake"
    SUBJECT_NAME: ClassVar[str] = "household_updated"
    event_type: Literal["HouseholdUpdated"] = "HouseholdUpdated"
    schema_version: Literal[1] = 1
    data: HouseholdUpdatedData


class ComplaintCategory(StrEnum):
    AID_NOT_RECEIVED = "aid_not_received"
    HEALTH_REFERRAL = "health_referral"
    NEGLECTED_CHILD = "neglected_child"
    HOMELESS_OR_BEGGAR = "homeless_or_beggar"
    DISABILITY = "disability"
    ELDERLY_ALONE = "elderly_alone"
    DISASTER_VICTIM = "disaster_victim"
    DATA_CORRECTION = "data_correction"
    OTHER = "other"


class ComplaintChannel(StrEnum):
    WALK_IN = "walk_in"
    PHONE = "phone"
    WHATSAPP = "whatsapp"
    APP = "app"


class Urgency(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    EMERGENCY = "emergency"


class Complainant(Contract):
    """A registered resident (by NIK) or an anonymous person reachable by phone."""

    nik: NIK | None = None
    kk_number: KKNumber | None = None
    contact_phone: WhatsAppPhone | None = None

    @model_validator(mode="after")
    def _identified_or_reachable(self) -> Self:
        if self.nik is None and self.contact_phone is None:
            raise ValueError("a complaint needs the resident's NIK or, when anonymous, a contact phone")
        return self


class ComplaintFiledData(Contract):
    complaint_id: uuid.UUID
    case_number: str = Field(
        pattern=r"^[0-9]{10}/[0-9]{4}/[0-9]{5,}$",
        description="Unique per village per year, no gaps: {village digits}/{year}/{sequence}",
        examples=["3573011001/2026/00001"],
    )
    category: ComplaintCategory
    channel: ComplaintChannel
    urgency: Urgency
    description: LongText = Field(json_schema_extra=personal())
    complainant: Complainant
    village_code: VillageCode
    filed_by: str = Field(min_length=1, max_length=100, description="Officer id")
    filed_at: AwareDatetime


class ComplaintFiled(Event):
    PRODUCER: ClassVar[str] = "intake"
    SUBJECT_NAME: ClassVar[str] = "complaint_filed"
    event_type: Literal["ComplaintFiled"] = "ComplaintFiled"
    schema_version: Literal[1] = 1
    data: ComplaintFiledData
