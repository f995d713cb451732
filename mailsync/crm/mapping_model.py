"""The CRM model mailsync writes by default (contract section 4).

The logical object and field names, the external ID of each object, the
fields written per object, which fields are numbers or booleans, the columns
`mailsync records` shows, and the rank of each status value (a status never
rolls back to a lower rank). Everything else works on these logical names;
`mailsync.crm.mapping_config.CrmMapping` renames them at the backend boundary.
This module and the other `mailsync.crm.mapping*` modules are the only places
where CRM object and field names appear.
"""

from __future__ import annotations

ACCOUNT = "Account"
AGREEMENT = "AWS_Agreement__c"
OFFER = "AWS_Offer__c"
SUBSCRIPTION = "AWS_Subscription__c"
EVENT = "AWS_Marketplace_Event__c"
INVOICE = "AWS_Invoice__c"  #: Seller Data Feeds (contract section 7)
OPPORTUNITY = "Opportunity"

#: Objects in dependency order: a parent before the records that look it up.
OBJECTS: tuple[str, ...] = (ACCOUNT, AGREEMENT, INVOICE, OFFER, SUBSCRIPTION, EVENT)

EXTERNAL_ID: dict[str, str] = {
    ACCOUNT: "AWS_Account_ID__c",
    AGREEMENT: "Agreement_ID__c",
    OFFER: "Offer_ID__c",
    SUBSCRIPTION: "Subscription_Key__c",
    EVENT: "Event_Key__c",
    INVOICE: "Invoice_Key__c",
}

NAME = "Name"
STATUS = "Status__c"
LAST_AT = "Last_Event_At__c"
LAST_KIND = "Last_Event_Kind__c"
ACCOUNT_LOOKUP = "Account__c"  #: lookup field; written as `Account__r`
ACCOUNT_REF = "Account__r"
AGREEMENT_LOOKUP = "Agreement__c"  #: on AWS_Invoice__c; written as `Agreement__r`
AGREEMENT_REF = "Agreement__r"

#: Seller Data Feed roll-ups on AWS_Agreement__c (contract section 7).
AGREEMENT_MONEY_FIELDS: tuple[str, ...] = tuple(
    "Invoiced_To_Date__c Refunded_To_Date__c Net_Invoiced_To_Date__c "
    "Disbursed_To_Date__c Outstanding_Amount__c".split()
)
AGREEMENT_ROLLUP_FIELDS: tuple[str, ...] = (
    *AGREEMENT_MONEY_FIELDS,
    "Last_Invoice_Date__c",
    "Next_Payment_Due_Date__c",
    "Last_Disbursement_Date__c",
)
INVOICE_MONEY_FIELDS: tuple[str, ...] = tuple(
    "Invoiced_Amount__c Refunded_Amount__c Listing_Fee__c Seller_Tax_Share__c "
    "AWS_Tax_Share__c Net_Amount__c Disbursed_Amount__c Outstanding_Amount__c".split()
)

#: Every field mailsync writes by default, per object (contract section 4).
FIELDS: dict[str, tuple[str, ...]] = {
    ACCOUNT: ("AWS_Account_ID__c", NAME),
    AGREEMENT: (
        *"Agreement_ID__c Name Status__c Account__c Customer_AWS_Account_ID__c "
        "Customer_Name__c Offer_ID__c Offer_Name__c Product_ID__c Product_Name__c "
        "Acceptance_Date__c Start_Date__c End_Date__c Purchase_Amount__c "
        "Wholesale_Price__c Margin__c Currency__c Channel_Partner_Name__c "
        "Channel_Partner_AWS_Account_ID__c ISV_Name__c ISV_AWS_Account_ID__c "
        "Previous_Agreement_ID__c Last_Event_At__c Last_Event_Kind__c".split(),
        # Concurrent Agreements: the license identifies a purchase (section 6).
        "License_ARN__c",
        "Product_Code__c",
        "License_Status__c",
        # Seller Data Feed roll-ups (section 7).
        *AGREEMENT_ROLLUP_FIELDS,
    ),
    OFFER: tuple(
        "Offer_ID__c Name Status__c Product_ID__c Product_Name__c "
        "Customer_AWS_Account_IDs__c Published_Date__c Expiration_Date__c "
        "Opportunity_ID__c Wholesale_Price__c Currency__c Last_Event_At__c".split()
    ),
    SUBSCRIPTION: tuple(
        "Subscription_Key__c Name Status__c Product_Code__c Customer_Identifier__c "
        "Offer_ID__c Free_Trial__c Customer_AWS_Account_ID__c "
        "Last_Entitlement_Update__c Last_Event_At__c".split()
    ),
    EVENT: tuple(
        "Event_Key__c Name Kind__c Channel__c Source_ID__c Occurred_At__c "
        "Agreement_ID__c Offer_ID__c Customer_AWS_Account_ID__c Summary__c".split()
    ),
    INVOICE: (
        *"Invoice_Key__c Name Invoice_ID__c Agreement_ID__c Agreement__c "
        "Customer_AWS_Account_ID__c Payer_AWS_Account_ID__c Offer_ID__c "
        "Product_ID__c Transaction_Reference_ID__c Invoice_Date__c "
        "Payment_Due_Date__c Currency__c Broker__c".split(),
        *INVOICE_MONEY_FIELDS,
        *"Disbursement_Date__c Disbursement_Status__c Status_As_Of__c "
        "Days_Past_Due__c".split(),
    ),
}

NUMBER_FIELDS = frozenset(
    {"Purchase_Amount__c", "Wholesale_Price__c", "Margin__c", "Days_Past_Due__c"}
    | set(AGREEMENT_MONEY_FIELDS)
    | set(INVOICE_MONEY_FIELDS)
)
#: Number fields that count (days), shown as whole numbers, not money.
INTEGER_FIELDS = frozenset({"Days_Past_Due__c"})
BOOLEAN_FIELDS = frozenset({"Free_Trial__c"})

#: The columns `mailsync records` shows in its table format (all in json/csv).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    ACCOUNT: ("AWS_Account_ID__c", NAME),
    AGREEMENT: tuple(
        "Agreement_ID__c Status__c Customer_AWS_Account_ID__c Customer_Name__c "
        "End_Date__c Purchase_Amount__c Currency__c".split()
    ),
    OFFER: tuple(
        "Offer_ID__c Name Status__c Product_ID__c Customer_AWS_Account_IDs__c "
        "Expiration_Date__c".split()
    ),
    SUBSCRIPTION: tuple(
        "Subscription_Key__c Status__c Offer_ID__c Customer_AWS_Account_ID__c "
        "Last_Event_At__c".split()
    ),
    EVENT: tuple("Event_Key__c Kind__c Channel__c Occurred_At__c Summary__c".split()),
    INVOICE: tuple(
        "Invoice_ID__c Agreement_ID__c Invoice_Date__c Payment_Due_Date__c "
        "Net_Amount__c Disbursed_Amount__c Outstanding_Amount__c "
        "Disbursement_Status__c Days_Past_Due__c".split()
    ),
}

# -- status values and ranks (contract section 4, "Status never rolls back") --

AGREEMENT_RANK: dict[str, int] = {
    "Active": 1,
    "Payment Failed": 2,
    "Cancelled": 3,
    "Expired": 3,
    "Terminated": 3,
    "Renewed": 3,
    "Replaced": 3,
    "Creation Failed": 3,
    # Agreement API statuses (contract section 6).
    "Archived": 3,
    "Rolled Back": 3,
    "Superseded": 3,
}
#: `AWS_Agreement__c.License_Status__c` values (contract section 6).
LICENSE_STATUSES: tuple[str, ...] = ("Provisioned", "Deprovisioned")
OFFER_RANK: dict[str, int] = {"Published": 1, "Accepted": 2}
SUBSCRIPTION_RANK: dict[str, int] = {
    "Subscribe Failed": 1,
    "Subscribed": 1,
    "Unsubscribe Pending": 2,
    "Unsubscribed": 3,
}
RANKS: dict[str, dict[str, int]] = {
    AGREEMENT: AGREEMENT_RANK,
    OFFER: OFFER_RANK,
    SUBSCRIPTION: SUBSCRIPTION_RANK,
}

# -- field lengths (the Text / Long Text Area lengths of config/salesforce) -----

#: Standard Name fields: 255 on Account, 80 on a custom object.
_NAME_LENGTH = {ACCOUNT: 255}
_CUSTOM_NAME_LENGTH = 80
#: Text fields by length, per object; every text field mailsync writes.
_TEXT_LENGTHS: dict[str, dict[int, str]] = {
    ACCOUNT: {12: "AWS_Account_ID__c"},
    AGREEMENT: {
        3: "Currency__c",
        12: "Customer_AWS_Account_ID__c Channel_Partner_AWS_Account_ID__c "
        "ISV_AWS_Account_ID__c",
        64: "Agreement_ID__c Previous_Agreement_ID__c Last_Event_Kind__c",
        100: "Offer_ID__c Product_ID__c Product_Code__c",
        255: "Customer_Name__c Offer_Name__c Product_Name__c "
        "Channel_Partner_Name__c ISV_Name__c License_ARN__c",
    },
    OFFER: {
        3: "Currency__c",
        100: "Offer_ID__c Product_ID__c",
        255: "Opportunity_ID__c Product_Name__c",
        32768: "Customer_AWS_Account_IDs__c",
    },
    SUBSCRIPTION: {
        12: "Customer_AWS_Account_ID__c",
        64: "Product_Code__c",
        100: "Offer_ID__c",
        255: "Subscription_Key__c Customer_Identifier__c",
    },
    EVENT: {
        12: "Customer_AWS_Account_ID__c",
        16: "Channel__c",
        64: "Agreement_ID__c Kind__c",
        100: "Offer_ID__c",
        255: "Event_Key__c Source_ID__c",
        32768: "Summary__c",
    },
}
#: The length of every text field mailsync writes (contract section 4, as
#: deployed from config/salesforce); a value is clamped to it before merging.
LENGTHS: dict[str, dict[str, int]] = {
    obj: {
        NAME: _NAME_LENGTH.get(obj, _CUSTOM_NAME_LENGTH),
        **{f: n for n, names in by_len.items() for f in names.split()},
    }
    for obj, by_len in _TEXT_LENGTHS.items()
}
