"""The role table is the policy; this pins it down."""

from vrooms.auth.roles import ROLE_CAPABILITIES, Capability, Role, role_can


def test_presenter_can_do_everything() -> None:
    assert ROLE_CAPABILITIES[Role.PRESENTER] == frozenset(Capability)


def test_attendee() -> None:
    allowed = {c for c in Capability if role_can(Role.ATTENDEE, c)}
    assert allowed == {
        Capability.SEND_AUDIO,
        Capability.SEND_VIDEO,
        Capability.RECEIVE_MEDIA,
        Capability.START_CAPTIONS,
        Capability.CHANGE_CAPTION_LANGUAGE,
    }


def test_consumer_only_receives() -> None:
    allowed = {c for c in Capability if role_can(Role.CONSUMER, c)}
    assert allowed == {Capability.RECEIVE_MEDIA, Capability.START_CAPTIONS}


def test_every_role_has_an_entry() -> None:
    assert set(ROLE_CAPABILITIES) == set(Role)
