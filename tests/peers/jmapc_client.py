#!/usr/bin/env python3
"""A real JMAP client against Tern: the unmodified jmapc (PyPI) library.

Usage: jmapc_client.py HOST:PORT USER PASSWORD

jmapc always speaks https://HOST/.well-known/jmap; point REQUESTS_CA_BUNDLE at the server's
certificate for a test server. Runs: the session, Mailbox/get and Mailbox/query with a sort,
Email/set (create a draft, then update its keywords), Email/query with a sort (jmapc puts
anchorOffset, calculateTotal and position into every Comparator), Email/get with body values,
and Email/set destroy. Exits non-zero with a message on any failure.
"""

import sys

try:
    import jmapc
    from jmapc import (
        Client,
        Comparator,
        Email,
        EmailAddress,
        EmailBodyPart,
        EmailBodyValue,
        EmailQueryFilterCondition,
        MailboxQueryFilterCondition,
    )
    from jmapc.methods import (
        EmailGet,
        EmailGetResponse,
        EmailQuery,
        EmailQueryResponse,
        EmailSet,
        EmailSetResponse,
        MailboxGet,
        MailboxGetResponse,
        MailboxQuery,
        MailboxQueryResponse,
    )
except ImportError as error:  # pragma: no cover
    sys.exit(f"jmapc is not installed ({error}): pip install jmapc")


def fail(message):
    sys.exit(f"jmapc against Tern FAILED: {message}")


def one(client, method, expected_type):
    """Sends one method call; fails unless the answer is of the expected type."""
    answer = client.request(method)
    if not isinstance(answer, expected_type):
        fail(f"{type(method).__name__} answered {answer!r}")
    return answer


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    host, user, password = sys.argv[1:4]
    client = Client.create_with_password(host=host, user=user, password=password)
    session = client.jmap_session
    if session.username != user:
        fail(f"the session is for {session.username!r}, not {user!r}")
    print(f"jmapc {jmapc.version}: session for {session.username}, account {client.account_id}")

    mailboxes = one(client, MailboxGet(ids=None), MailboxGetResponse).data
    roles = {mailbox.role: mailbox.id for mailbox in mailboxes if mailbox.role}
    if "drafts" not in roles or "inbox" not in roles:
        fail(f"no Drafts or Inbox among {[(m.name, m.role) for m in mailboxes]}")
    sorted_mailboxes = one(
        client,
        MailboxQuery(
            filter=MailboxQueryFilterCondition(role="inbox"),
            sort=[Comparator(property="name")],
        ),
        MailboxQueryResponse,
    )
    if sorted_mailboxes.ids != [roles["inbox"]]:
        fail(f"Mailbox/query by role found {sorted_mailboxes.ids}")
    print(f"Mailbox/get: {len(mailboxes)} mailboxes; Mailbox/query with a sort: ok")

    subject = "jmapc interoperability"
    draft = Email(
        mailbox_ids={roles["drafts"]: True},
        keywords={"$draft": True},
        mail_from=[EmailAddress(name="jmapc", email=user)],
        to=[EmailAddress(name=None, email=user)],
        subject=subject,
        text_body=[EmailBodyPart(part_id="body", type="text/plain")],
        body_values={"body": EmailBodyValue(value="Hello from jmapc.")},
    )
    created = one(client, EmailSet(create={"draft": draft}), EmailSetResponse)
    if not created.created or not created.created.get("draft"):
        fail(f"Email/set create: {created}")
    email_id = created.created["draft"].id
    print(f"Email/set created {email_id}")

    updated = one(
        client,
        EmailSet(update={email_id: {"keywords/$seen": True}}),
        EmailSetResponse,
    )
    if not updated.updated or email_id not in updated.updated:
        fail(f"Email/set update: {updated}")

    queried = one(
        client,
        EmailQuery(
            filter=EmailQueryFilterCondition(in_mailbox=roles["drafts"]),
            sort=[Comparator(property="receivedAt", is_ascending=False)],
            limit=10,
            calculate_total=True,
        ),
        EmailQueryResponse,
    )
    if email_id not in queried.ids:
        fail(f"Email/query with a sort did not find {email_id}: {queried.ids}")
    print(f"Email/query with a sort: {queried.ids} (total {queried.total})")

    got = one(
        client,
        EmailGet(
            ids=[email_id],
            properties=["subject", "keywords", "bodyValues", "textBody", "receivedAt"],
            fetch_text_body_values=True,
        ),
        EmailGetResponse,
    )
    if len(got.data) != 1 or got.data[0].subject != subject:
        fail(f"Email/get: {got.data}")
    email = got.data[0]
    if not (email.keywords or {}).get("$seen"):
        fail(f"the $seen update is missing: {email.keywords}")
    body = "".join(value.value for value in (email.body_values or {}).values())
    if "Hello from jmapc." not in body:
        fail(f"Email/get body values: {email.body_values}")
    print(f"Email/get: {email.subject!r}, keywords {sorted(email.keywords)}")

    destroyed = one(client, EmailSet(destroy=[email_id]), EmailSetResponse)
    if email_id not in (destroyed.destroyed or []):
        fail(f"Email/set destroy: {destroyed}")
    print("Email/set destroy: ok; jmapc works against Tern")


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as error:  # noqa: BLE001 - any failure is a failed run
        fail(f"{type(error).__name__}: {error}")
