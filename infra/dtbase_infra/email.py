"""Email for notifications: Azure Communication Services with an Email Communication
Service and its Azure-managed domain (`DoNotReply@<id>.azurecomm.net`), linked.

The app signs its requests with the Communication Service's access key (HMAC; the key
itself never travels), which goes into the Key Vault like every other secret: the app
setting DT_ACS_ACCESS_KEY is a Key Vault reference. Both resources are global; their data
stays in `emailDataLocation`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import communication

from .settings import StackSettings

SENDER_USERNAME = "DoNotReply"  # the one sender an Azure-managed domain comes with


@dataclass
class Email:
    email_service: communication.EmailService
    domain: communication.Domain
    service: communication.CommunicationService
    endpoint: pulumi.Output[str]
    sender_address: pulumi.Output[str]
    access_key: pulumi.Output[str]  # secret


def create_email(settings: StackSettings, resource_group: pulumi.Input[str]) -> Email:
    email_service = communication.EmailService(
        "email-service",
        email_service_name=settings.name("email"),
        resource_group_name=resource_group,
        location="global",
        data_location=settings.email_data_location,
        tags=dict(settings.tags),
    )
    domain = communication.Domain(
        "email-domain",
        domain_name="AzureManagedDomain",  # the name Azure requires for a managed domain
        domain_management=communication.DomainManagement.AZURE_MANAGED,
        email_service_name=email_service.name,
        resource_group_name=resource_group,
        location="global",
        user_engagement_tracking=communication.UserEngagementTracking.DISABLED,
        tags=dict(settings.tags),
    )
    service = communication.CommunicationService(
        "communication-service",
        communication_service_name=settings.name("acs"),
        resource_group_name=resource_group,
        location="global",
        data_location=settings.email_data_location,
        linked_domains=[domain.id],
        tags=dict(settings.tags),
    )
    keys = communication.list_communication_service_keys_output(
        communication_service_name=service.name, resource_group_name=resource_group
    )
    return Email(
        email_service=email_service,
        domain=domain,
        service=service,
        endpoint=pulumi.Output.concat("https://", service.host_name),
        sender_address=pulumi.Output.concat(SENDER_USERNAME, "@", domain.mail_from_sender_domain),
        access_key=pulumi.Output.secret(keys.apply(lambda k: k.primary_key or "")),
    )
