"""The Salesforce objects and fields mailsync writes (contract section 4).

`DEFAULT_SCHEMA` is the default data model, the same one shipped as deployable
metadata in ``config/salesforce/``; `SalesforceBackend.check` compares it with
the org's describe results and `fetch_all` reads these fields back. Each field
has a *kind*; `DESCRIBE_TYPES` lists the describe ``type`` values a kind
accepts (an admin may, for example, widen a Text field to a Long Text Area).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mailsync.crm.mapping import AGREEMENT_RANK, CrmMapping
from mailsync.crm.mapping_model import (
    AGREEMENT_MONEY_FIELDS,
    INVOICE_MONEY_FIELDS,
    LICENSE_STATUSES,
)

#: Describe ``type`` values accepted for each field kind.
DESCRIBE_TYPES: dict[str, frozenset[str]] = {
    "text": frozenset({"string", "textarea", "picklist", "email", "url", "phone"}),
    "picklist": frozenset({"picklist", "string"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime"}),
    "number": frozenset({"double", "currency", "percent", "int"}),
    "boolean": frozenset({"boolean"}),
    "reference": frozenset({"reference"}),
}
#: Opt-in extra fields (``mapping.extra_fields``) are only checked to exist.
ANY = "any"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str = "text"
    reference_to: str = ""  #: parent object of a lookup ("Account")
    #: picklist values mailsync writes (checked when the field is a picklist)
    values: tuple[str, ...] = ()

    @property
    def relationship(self) -> str:
        """``Account__c`` -> ``Account__r`` (how records name the parent)."""
        return self.name[: -len("__c")] + "__r" if self.name.endswith("__c") else ""


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    external_id: str  #: Text, External ID, Unique; "" for Opportunity
    fields: tuple[FieldSpec, ...]
    logical: str = ""  #: the contract's name when the mapping renames it

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


def _text(*names: str) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec(n) for n in names)


def _kind(kind: str, *names: str) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec(n, kind) for n in names)


ACCOUNT = ObjectSpec("Account", "AWS_Account_ID__c", _text("Name"))

AGREEMENT = ObjectSpec(
    "AWS_Agreement__c",
    "Agreement_ID__c",
    (
        FieldSpec("Name"),
        FieldSpec("Status__c", "picklist", values=tuple(AGREEMENT_RANK)),
        FieldSpec("Account__c", "reference", "Account"),
        *_text(
            "Customer_AWS_Account_ID__c",
            "Customer_Name__c",
            "Offer_ID__c",
            "Offer_Name__c",
            "Product_ID__c",
            "Product_Name__c",
        ),
        *_kind("date", "Acceptance_Date__c", "Start_Date__c", "End_Date__c"),
        *_kind("number", "Purchase_Amount__c", "Wholesale_Price__c", "Margin__c"),
        *_text(
            "Currency__c",
            "Channel_Partner_Name__c",
            "Channel_Partner_AWS_Account_ID__c",
            "ISV_Name__c",
            "ISV_AWS_Account_ID__c",
            "Previous_Agreement_ID__c",
        ),
        FieldSpec("Last_Event_At__c", "datetime"),
        FieldSpec("Last_Event_Kind__c"),
        *_text("License_ARN__c", "Product_Code__c"),
        FieldSpec("License_Status__c", "picklist", values=LICENSE_STATUSES),
        # Seller Data Feed roll-ups (contract section 7)
        *_kind("number", *AGREEMENT_MONEY_FIELDS),
        *_kind(
            "date",
            "Last_Invoice_Date__c",
            "Next_Payment_Due_Date__c",
            "Last_Disbursement_Date__c",
        ),
    ),
)

INVOICE = ObjectSpec(
    "AWS_Invoice__c",
    "Invoice_Key__c",
    (
        FieldSpec("Name"),
        *_text("Invoice_ID__c", "Agreement_ID__c"),
        FieldSpec("Agreement__c", "reference", "AWS_Agreement__c"),
        *_text(
            "Customer_AWS_Account_ID__c",
            "Payer_AWS_Account_ID__c",
            "Offer_ID__c",
            "Product_ID__c",
            "Transaction_Reference_ID__c",
        ),
        *_kind("date", "Invoice_Date__c", "Payment_Due_Date__c"),
        *_text("Currency__c", "Broker__c"),
        *_kind("number", *INVOICE_MONEY_FIELDS),
        FieldSpec("Disbursement_Date__c", "date"),
        FieldSpec("Disbursement_Status__c", "picklist"),
        FieldSpec("Status_As_Of__c", "date"),
        FieldSpec("Days_Past_Due__c", "number"),
    ),
)

OFFER = ObjectSpec(
    "AWS_Offer__c",
    "Offer_ID__c",
    (
        FieldSpec("Name"),
        FieldSpec("Status__c", "picklist"),
        *_text("Product_ID__c", "Product_Name__c", "Customer_AWS_Account_IDs__c"),
        *_kind("date", "Published_Date__c", "Expiration_Date__c"),
        FieldSpec("Opportunity_ID__c"),
        FieldSpec("Wholesale_Price__c", "number"),
        FieldSpec("Currency__c"),
        FieldSpec("Last_Event_At__c", "datetime"),
    ),
)

SUBSCRIPTION = ObjectSpec(
    "AWS_Subscription__c",
    "Subscription_Key__c",
    (
        FieldSpec("Name"),
        FieldSpec("Status__c", "picklist"),
        *_text("Product_Code__c", "Customer_Identifier__c", "Offer_ID__c"),
        FieldSpec("Free_Trial__c", "boolean"),
        FieldSpec("Customer_AWS_Account_ID__c"),
        *_kind("datetime", "Last_Entitlement_Update__c", "Last_Event_At__c"),
    ),
)

EVENT = ObjectSpec(
    "AWS_Marketplace_Event__c",
    "Event_Key__c",
    (
        FieldSpec("Name"),
        *_text("Kind__c", "Channel__c", "Source_ID__c"),
        FieldSpec("Occurred_At__c", "datetime"),
        *_text(
            "Agreement_ID__c", "Offer_ID__c", "Customer_AWS_Account_ID__c", "Summary__c"
        ),
    ),
)

OPPORTUNITY = ObjectSpec(
    "Opportunity",
    "",
    (
        FieldSpec("StageName", "picklist"),
        FieldSpec("AWS_Offer_ID__c"),
        FieldSpec("AWS_Agreement_ID__c"),
    ),
)

DEFAULT_SCHEMA: tuple[ObjectSpec, ...] = (
    ACCOUNT,
    AGREEMENT,
    INVOICE,
    OFFER,
    SUBSCRIPTION,
    EVENT,
)


def expected_schema(
    mapping: CrmMapping, *, opportunities: bool
) -> tuple[ObjectSpec, ...]:
    """The objects and fields mailsync writes, under the CRM names the
    mapping gives them (fields switched off are left out, opt-in extra fields
    added); Opportunity only when ``opportunity_stage`` is set."""
    out = []
    for spec in DEFAULT_SCHEMA + ((OPPORTUNITY,) if opportunities else ()):
        fields = []
        for f in spec.fields:
            crm = mapping.field(spec.name, f.name)
            if crm:
                parent = mapping.obj(f.reference_to) if f.reference_to else ""
                fields.append(replace(f, name=crm, reference_to=parent))
        for extra in mapping.extra_fields.get(spec.name, {}):
            fields.append(FieldSpec(extra, ANY))
        ext = mapping.external_id(spec.name) if spec.external_id else ""
        out.append(ObjectSpec(mapping.obj(spec.name), ext, tuple(fields), spec.name))
    return tuple(out)


def find(schema: tuple[ObjectSpec, ...], obj: str) -> ObjectSpec | None:
    """The spec of `obj`, by CRM or contract name."""
    return next((o for o in schema if obj in (o.name, o.logical)), None)
