//! The wire format: one serde enum per direction, `{"type": ..., "payload": {...}}`.
//!
//! Legacy (CAHAT v1) actions keep their names and fields exactly; everything we added is either a
//! new action type (legacy reducers ignore unknown types) or an optional field (legacy code never
//! reads it). Every server action carries an object payload, because the legacy client writes
//! `payload.wsAddress` into each action it receives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// Version of our protocol extensions, announced in `HANDSHAKE`. Legacy servers send none.
pub const PROTOCOL_VERSION: u32 = 2;

/// A user's stable id. Ours are random hex strings; legacy ids are whatever v1 issued.
pub type UserId = String;

/// Per-room message sequence number: strictly increasing, starting at 1.
pub type Seq = u64;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// What a client sends to a room server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum ClientAction {
    /// Post a message (legacy).
    #[serde(rename = "MESSAGE")]
    Message(SendMessage),
    /// Rename oneself (legacy).
    #[serde(rename = "NAME_CHANGE")]
    NameChange(ChangeName),
    /// Identify: as a new user, or as a known one (legacy), or resume (ours: token and since).
    #[serde(rename = "HANDSHAKE_USER_INFO")]
    HandshakeUserInfo(HandshakeUserInfo),
    /// Ask for a page of older messages (ours).
    #[serde(rename = "HISTORY_REQUEST")]
    HistoryRequest(HistoryRequest),
    /// Change the text of one's own message (ours).
    #[serde(rename = "EDIT_MESSAGE")]
    EditMessage(EditMessage),
    /// Delete one's own message for everyone (ours).
    #[serde(rename = "DELETE_MESSAGE")]
    DeleteMessage(DeleteMessage),
    /// Add (`on`) or take back a reaction to a message (ours).
    #[serde(rename = "REACT")]
    React(React),
    /// The user is typing a message (ours): shown to the others for a few seconds, never
    /// stored.
    #[serde(rename = "TYPING")]
    Typing(Typing),
    /// Search the room's messages and one's own direct messages (ours).
    #[serde(rename = "SEARCH")]
    Search(Search),
    /// Call signalling with one person (ours): ring, accept, decline, hang up, and the
    /// WebRTC offer, answer, candidates and media state, relayed to the other side only.
    #[serde(rename = "CALL")]
    Call(CallSignal),
    /// An owner makes someone a moderator, or a member again (ours).
    #[serde(rename = "SET_ROLE")]
    SetRole(SetRole),
    /// A moderator or owner acts on someone they outrank (ours): a time-out, its end.
    #[serde(rename = "MODERATE")]
    Moderate(Moderate),
    /// A moderator or owner sets the room's topic and slow mode (ours).
    #[serde(rename = "SET_ROOM")]
    SetRoom(SetRoom),
    /// Anyone reports a room message to the moderators, saying why (ours).
    #[serde(rename = "REPORT")]
    Report(Report),
    /// A moderator or owner resolves an open report (ours).
    #[serde(rename = "RESOLVE_REPORT")]
    ResolveReport(ResolveReport),
    /// A moderator or owner asks for the moderation log and the open reports (ours).
    #[serde(rename = "AUDIT_REQUEST")]
    AuditRequest(AuditRequest),
    /// Ask for a page of the people online (ours): `HANDSHAKE` lists only the first ones.
    #[serde(rename = "PEOPLE_REQUEST")]
    PeopleRequest(PeopleRequest),
}

/// Payload of `REPORT`: the room message `target` (a seq), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub target: Seq,
    /// At most [`MAX_REASON_CHARS`].
    pub reason: String,
    /// Named by an `ERROR` that refuses it, and by the `AUDIT` entry that answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Payload of `RESOLVE_REPORT`: the report (its seq) is dealt with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolveReport {
    pub report: Seq,
    /// Named by an `ERROR` that refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Payload of `AUDIT_REQUEST`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRequest {
    /// Named by an `ERROR` that refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Payload of `PEOPLE_REQUEST`: up to `limit` of the people online whose ids come after
/// `after` (from the first, without it), in the order of their ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeopleRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<UserId>,
    /// How many at most; the server caps it.
    pub limit: u32,
}

/// Payload of `PEOPLE`: a page of the people online, in the order of their ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeoplePage {
    /// The `after` this page answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<UserId>,
    /// The people of the page, online now, with when they joined.
    pub people: Vec<Person>,
    /// Their names (those who have taken one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_names: BTreeMap<UserId, String>,
    /// Where the next page starts (`after` for it); absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<UserId>,
    /// How many people are online in all.
    pub online_count: u32,
}

/// What a moderation event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuditAction {
    /// Someone reported the message `target`, saying why.
    Report,
    /// A moderator resolved the report `report`.
    Resolve,
    /// A moderator removed `user`'s message `target`.
    Remove,
    /// `user` was timed out `until`.
    TimeOut,
    /// `user`'s time-out was ended.
    EndTimeOut,
    /// `user` was kicked, saying why.
    Kick,
    /// `user` was banned (`until`; none: until lifted), saying why.
    Ban,
    /// `user`'s ban was lifted.
    Unban,
    /// `user` was made a moderator.
    Moderator,
    /// `user` was made a member again.
    Member,
    /// The topic or slow mode changed.
    RoomSettings,
}

/// One event of the room's moderation log: who did what to whom and why. Only moderators and
/// owners read it (and a reporter the entry of their own report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Its place in the room's log (0 until stored).
    pub seq: Seq,
    pub at: Millis,
    /// Who acted (the reporter, for a report).
    pub by: UserId,
    pub action: AuditAction,
    /// Whom it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The message it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Seq>,
    /// The report a resolve closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Seq>,
    /// Why, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Until when (a time-out, a ban).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
}

/// Payload of `AUDIT`: moderation events, newest first, and the open reports (oldest first),
/// to moderators and owners; `live`: just happened (one entry), else the answer to
/// `AUDIT_REQUEST` (the latest the room keeps).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    pub entries: Vec<AuditEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_reports: Vec<AuditEntry>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub live: bool,
    /// The nonce of what this answers (a report's, to its reporter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// What moderators set for the whole room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoomSettings {
    /// Shown under the room's name (at most [`MAX_TOPIC_CHARS`]; empty: none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub topic: String,
    /// Slow mode: the seconds one person waits between two room messages (0: off; at most
    /// [`MAX_SLOW_MODE_SECONDS`]). Moderators and owners do not wait; direct messages neither.
    #[serde(skip_serializing_if = "is_zero")]
    pub slow_mode_seconds: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RoomSettings {
    /// Nothing set.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The longest topic.
pub const MAX_TOPIC_CHARS: usize = 300;

/// The longest slow mode: an hour between messages.
pub const MAX_SLOW_MODE_SECONDS: u32 = 3600;

/// Payload of `SET_ROOM`: the room's settings as they should be now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetRoom {
    pub settings: RoomSettings,
    /// Named by an `ERROR` that refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// What a moderator does to someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ModerationKind {
    /// They can read, not write or react, for `minutes`.
    TimeOut,
    /// Their time-out ends now.
    EndTimeOut,
    /// Their connections are closed, with a reason; they may come back.
    Kick,
    /// Their connections are closed and they cannot come back (nor make a new identity from
    /// the network address they used, when `address` is asked) for `minutes`, or until
    /// unbanned when no `minutes` are given.
    Ban,
    /// Their ban ends now.
    Unban,
}

/// Payload of `MODERATE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Moderate {
    pub kind: ModerationKind,
    pub user_id: UserId,
    /// How long a time-out lasts (1 to [`MAX_TIME_OUT_MINUTES`]), or a ban (1 to
    /// [`MAX_BAN_MINUTES`]; none: until unbanned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u32>,
    /// Why (a kick's or a ban's; at most [`MAX_REASON_CHARS`]), told to the person it
    /// concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A ban's: also ban the network addresses the person connected from (since the room
    /// started), so that they cannot make a new identity from there.
    #[serde(default, skip_serializing_if = "is_false")]
    pub address: bool,
    /// Named by an `ERROR` that refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// The longest reason a moderator gives.
pub const MAX_REASON_CHARS: usize = 200;

/// The longest time-out: a week.
pub const MAX_TIME_OUT_MINUTES: u32 = 7 * 24 * 60;

/// The longest ban with an end: a year (longer: until unbanned).
pub const MAX_BAN_MINUTES: u32 = 365 * 24 * 60;

fn is_false(b: &bool) -> bool {
    !*b
}

/// What someone may do in the room beyond a member: a moderator removes members' messages; an
/// owner also removes moderators' and makes and unmakes moderators. Owners are made by the
/// room's operator (`real-server role grant`). A member has no role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Moderator,
    Owner,
}

impl Role {
    /// Whether someone with role `actor` outranks someone with role `other` (a member has
    /// none): only then may they act on the other's messages.
    pub fn outranks(actor: Option<Role>, other: Option<Role>) -> bool {
        actor > other
    }
}

/// Payload of `SET_ROLE`: `role` for `userId` (a moderator, or `null`: a member again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetRole {
    pub user_id: UserId,
    #[serde(default)]
    pub role: Option<Role>,
    /// Named by an `ERROR` that refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Payload of a client's `MESSAGE`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    /// Markdown source as the user typed it.
    pub raw_message: String,
    /// Legacy clients name themselves here. Only a claim: the server checks it against the
    /// identity bound to the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Client-chosen id of this message: a resend with the same nonce is stored once and the
    /// echo carries it back, so the sender can match it with its pending copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The seq of the message this one answers (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Seq>,
    /// A direct message (ours): only its author and this person ever see it, on every path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<UserId>,
}

/// Payload of `EDIT_MESSAGE`: the message `target` (a seq) now says `raw_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EditMessage {
    pub target: Seq,
    pub raw_message: String,
    /// Named by an `ERROR` that refuses this edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Payload of `DELETE_MESSAGE`: the message `target` (a seq) is deleted for everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteMessage {
    pub target: Seq,
    /// Named by an `ERROR` that refuses this delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Payload of `REACT`: `emoji` (one of the renderer's emoji table) on message `target`, added
/// (`on`) or taken back. Each person reacts with each emoji at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct React {
    pub target: Seq,
    pub emoji: String,
    pub on: bool,
    /// Named by an `ERROR` that refuses this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Payload of a client's `TYPING`: who types is the connection's identity; `to` says the
/// typing is in a direct conversation with that person (only they hear it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Typing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<UserId>,
}

/// One emoji's reactions to a message: who reacted with it, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    pub emoji: String,
    pub users: Vec<UserId>,
}

/// Payload of a client's `NAME_CHANGE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeName {
    /// The wanted name, before trimming.
    pub name: String,
    /// A claim, checked like [`SendMessage::user_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
}

/// Payload of `HANDSHAKE_USER_INFO`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandshakeUserInfo {
    /// The id the client had; absent for a first-time user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The secret issued with `USER_INFO`; without it a known id is not handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The last sequence number the client has; the server answers with `RESUME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Seq>,
    /// The protocol version the client speaks (ours): a client that names none is a legacy
    /// one, and is sent nothing it would not understand (typing, for one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
}

/// Payload of `HISTORY_REQUEST`: up to `limit` messages with `seq < before`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRequest {
    /// Exclusive upper bound.
    pub before: Seq,
    /// How many at most; the server caps it.
    pub limit: u32,
    /// Only the direct conversation of the asker with this person (ours); absent: everything
    /// the asker may see, room messages and their direct ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<UserId>,
}

/// Payload of `SEARCH`: messages with every word of `query` (each the start of a word, in any
/// case: see [`crate::search`]), newest first, older than `before` when it is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Search {
    /// What the person typed.
    pub query: String,
    /// Exclusive upper bound: a later page starts at the previous page's `next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Seq>,
    /// Echoed in the results, or in the `ERROR` that refuses the search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// What a room server sends to its clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum ServerAction {
    /// First action on every connection (legacy, with our optional fields).
    #[serde(rename = "HANDSHAKE")]
    Handshake(Handshake),
    /// The identity bound to this connection (legacy; `token` is ours).
    #[serde(rename = "USER_INFO")]
    UserInfo(UserInfo),
    /// A stored message, broadcast to everyone in the room (legacy fields plus ours).
    #[serde(rename = "MESSAGE")]
    Message(MessageRecord),
    /// Someone's name changed (legacy).
    #[serde(rename = "NAME_CHANGE")]
    NameChange(NameChanged),
    /// A user came online (legacy).
    #[serde(rename = "USER_CONNECTED")]
    UserConnected(UserRef),
    /// A user's last connection closed (ours).
    #[serde(rename = "USER_DISCONNECTED")]
    UserDisconnected(UserRef),
    /// Who came online, went offline or renamed in the last presence tick (ours): one frame
    /// per tick for everyone, instead of one per change.
    #[serde(rename = "PRESENCE")]
    Presence(Presence),
    /// Answer to `since` in `HANDSHAKE_USER_INFO` (ours).
    #[serde(rename = "RESUME")]
    Resume(Resume),
    /// Answer to `HISTORY_REQUEST` (ours).
    #[serde(rename = "HISTORY")]
    History(History),
    /// A request was refused (ours).
    #[serde(rename = "ERROR")]
    Error(ErrorPayload),
    /// A message was edited or deleted: the message as it is now, with `changedSeq`, the seq of
    /// the change (ours; legacy clients ignore it).
    #[serde(rename = "MESSAGE_CHANGED")]
    MessageChanged(MessageRecord),
    /// Someone is typing (ours; sent only to clients that speak our protocol).
    #[serde(rename = "TYPING")]
    Typing(TypingUser),
    /// Answer to `SEARCH` (ours).
    #[serde(rename = "SEARCH_RESULTS")]
    SearchResults(SearchResults),
    /// The direct conversations the identified person has in the room (ours): sent once,
    /// after `USER_INFO`, to clients that speak our protocol.
    #[serde(rename = "CONVERSATIONS")]
    Conversations(Conversations),
    /// Answer to `PEOPLE_REQUEST` (ours).
    #[serde(rename = "PEOPLE")]
    People(PeoplePage),
    /// Someone's role changed (ours), and who changed it.
    #[serde(rename = "ROLE")]
    Role(RoleChanged),
    /// A moderator acted on someone (ours): everyone sees what it means for them.
    #[serde(rename = "MODERATED")]
    Moderated(Moderated),
    /// The room's settings changed (ours), and who changed them.
    #[serde(rename = "ROOM")]
    Room(RoomChanged),
    /// The moderation log (ours): to moderators and owners.
    #[serde(rename = "AUDIT")]
    Audit(Audit),
    /// Call signalling from the other person of a call, or the room saying a call ended
    /// (ours; only to the two people's connections that speak our protocol).
    #[serde(rename = "CALL")]
    Call(CallSignal),
}

/// Payload of `HANDSHAKE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// The room's display name.
    pub server_name: String,
    /// The latest messages (at most 100), oldest first.
    pub messages: Vec<MessageRecord>,
    /// Names of every user who appears in `messages` or is online.
    pub user_names: BTreeMap<UserId, String>,
    /// Our protocol version; legacy servers do not send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    /// Highest sequence number stored in the room when this handshake was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_seq: Option<Seq>,
    /// Users online now: the first `--handshake-people` of them, in the order of their ids
    /// (a legacy server lists them all; ours says how many there are in `onlineCount` and
    /// gives the rest on `PEOPLE_REQUEST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<Vec<UserId>>,
    /// How many users are online in all (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_count: Option<u32>,
    /// The room's limits (ours): a client checks and paces what it sends by them instead of
    /// guessing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<RoomLimits>,
    /// The people `online` lists and those here most recently (ours; their names are in
    /// `userNames`): when they joined and when they were last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub people: Option<Vec<Person>>,
    /// The ICE servers (STUN, TURN) the operator offers for calls (ours); none means calls
    /// work between people on one network only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ice_servers: Vec<IceServer>,
    /// Everyone with a role (ours): owners and moderators; the rest are members.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<UserId, Role>,
    /// The time-outs in force (ours), as `MODERATED` tells them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timed_out: Vec<Moderated>,
    /// The bans in force (ours), as `MODERATED` tells them (without their reasons).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banned: Vec<Moderated>,
    /// The topic and slow mode (ours).
    #[serde(default, skip_serializing_if = "RoomSettings::is_default")]
    pub room: RoomSettings,
}

/// Payload of `ROOM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomChanged {
    pub settings: RoomSettings,
    pub by: UserId,
}

/// Payload of `MODERATED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Moderated {
    pub kind: ModerationKind,
    pub user_id: UserId,
    /// Until when a time-out or a ban lasts (the room's clock; a ban without one lasts until
    /// it is lifted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
    /// Why: only in the copy to the person it concerns (everyone else sees what happened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Payload of `ROLE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleChanged {
    pub user_id: UserId,
    /// The new role; `null`: a member.
    pub role: Option<Role>,
    /// The owner who changed it.
    pub by: UserId,
}

/// One ICE server for calls, as `RTCPeerConnection` takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// What one `CALL` says. The caller chooses the call's id when it rings; after that every
/// signal names it, and the room relays it only between the call's two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallKind {
    /// The caller rings `to` (the callee's connections hear it, with `from`).
    Ring,
    /// The callee takes the call (`video`: with camera); the caller hears it and offers.
    Accept,
    /// The callee does not take the call.
    Decline,
    /// Either ends the call (the caller, while it rings: it was not answered).
    Hangup,
    /// WebRTC session description of the caller (`data`: SDP).
    Offer,
    /// WebRTC session description of the callee (`data`: SDP).
    Answer,
    /// One ICE candidate (`data`: its JSON), either way.
    Ice,
    /// The sender's microphone (`audio`) and camera (`video`) are on or off.
    Media,
    /// From the room only: the call is over (`reason`).
    Ended,
}

/// Why a call ended, as the room tells both people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallEnd {
    /// One of them hung up after it was answered.
    HungUp,
    /// The callee declined.
    Declined,
    /// Nobody answered in time, or the caller gave up first.
    Missed,
    /// The callee took it on another of their connections.
    AnsweredElsewhere,
    /// A connection of the call closed.
    Disconnected,
}

/// Payload of `CALL`, both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallSignal {
    /// Chosen by the caller (1 to 64 characters), unique among the room's calls.
    pub call_id: String,
    pub kind: CallKind,
    /// Ring: whom to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<UserId>,
    /// From the room: who sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<UserId>,
    /// Ring and accept: with camera; media: the camera is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<bool>,
    /// Media: the microphone is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<bool>,
    /// Offer and answer: SDP; ice: the candidate's JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Ended: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CallEnd>,
    /// Named by an `ERROR` that refuses this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl CallSignal {
    /// A signal of `kind` for call `call_id`, saying nothing more.
    pub fn new(call_id: impl Into<String>, kind: CallKind) -> Self {
        Self {
            call_id: call_id.into(),
            kind,
            to: None,
            from: None,
            video: None,
            audio: None,
            data: None,
            reason: None,
            nonce: None,
        }
    }
}

/// The record a call leaves in its conversation (a direct message from the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub outcome: CallOutcome,
    /// How long it was connected, in seconds (0 unless answered).
    pub secs: u32,
}

/// How a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallOutcome {
    /// Answered, then ended.
    Answered,
    /// Declined by the callee.
    Declined,
    /// Nobody answered.
    Missed,
}

impl CallRecord {
    /// The line the conversation shows: "Call, 4 min", "Missed call", "Declined call".
    pub fn text(&self) -> String {
        match self.outcome {
            CallOutcome::Answered if self.secs < 60 => format!("Call, {} s", self.secs),
            CallOutcome::Answered => format!("Call, {} min", self.secs.div_ceil(60)),
            CallOutcome::Declined => "Declined call".to_owned(),
            CallOutcome::Missed => "Missed call".to_owned(),
        }
    }
}

/// Someone of the room, as the people list shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub user_id: UserId,
    /// When the room first gave them their identity (unknown for older identities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<Millis>,
    /// When their last connection closed (none while online or never seen leave).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Millis>,
}

/// A room's limits, as announced in `HANDSHAKE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomLimits {
    /// Longest message, in characters.
    pub max_message_chars: u32,
    /// Longest name, in characters.
    pub max_name_chars: u32,
    /// Actions a connection may send in a burst.
    pub rate_burst: u32,
    /// Actions a connection may send per second, sustained.
    pub rate_per_second: u32,
}

/// One stored message as it goes over the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRecord {
    /// Markdown as written; our client renders this itself.
    pub raw_message: String,
    /// Sanitised HTML for legacy clients, which inject it into the page.
    pub html_message: String,
    /// When the server accepted it.
    pub timestamp: Millis,
    /// Author, as bound to the author's connection.
    pub user_id: UserId,
    /// Position in the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
    /// Stable id (room-unique).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The author's nonce, echoed so the author can match its pending copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// When the text was last edited (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Millis>,
    /// Deleted by its author: the text is gone, a placeholder stays (ours).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Deleted by a moderator (with `deleted`): "removed by a moderator" (ours).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    /// The seq of the latest change to this message (an edit, a reaction or the delete), if
    /// any (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_seq: Option<Seq>,
    /// Reactions, in the order they were first given (ours).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The seq of the message this one answers (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Seq>,
    /// A direct message to this person (ours): only they and the author ever receive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<UserId>,
    /// The record of a call between the author (who called) and `to` (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallRecord>,
    /// In a live `MESSAGE_CHANGED` only: the nonce of the change (edit, delete, reaction) that
    /// made this copy, so that whoever asked for it knows it is stored (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_nonce: Option<String>,
}

impl MessageRecord {
    /// Bytes of this record's JSON, as it goes into a frame (measured, not estimated: a
    /// message of control characters takes six bytes for each).
    pub fn wire_len(&self) -> usize {
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        // Writing plain structs to a sink that cannot fail cannot fail.
        match serde_json::to_writer(&mut count, self) {
            Ok(()) => count.0,
            Err(_) => usize::MAX,
        }
    }
}

/// Payload of `USER_INFO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// The identity bound to this connection.
    pub user_id: UserId,
    /// Its current name.
    pub name: String,
    /// Secret needed to resume this identity later. Sent only to its owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Payload of the server's `NAME_CHANGE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameChanged {
    /// Who.
    pub user_id: UserId,
    /// The new name.
    pub name: String,
    /// `{userId: name}`, the same pair again: the legacy client merges it into its map.
    pub id_name_pair: BTreeMap<UserId, String>,
}

impl NameChanged {
    /// Builds the payload, filling the legacy `idNamePair`.
    pub fn new(user_id: UserId, name: String) -> Self {
        let id_name_pair = BTreeMap::from([(user_id.clone(), name.clone())]);
        Self {
            user_id,
            name,
            id_name_pair,
        }
    }
}

/// Payload of the server's `PRESENCE`: the changes of one presence tick, each person at most
/// once, as they are at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// Came online (with `joinedAt`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined: Vec<UserRef>,
    /// Went offline (with `lastSeen`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left: Vec<UserRef>,
    /// Names: of those who renamed, and of those who came online under a name other than
    /// the default one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<UserId, String>,
    /// How many people are online in all at the tick's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_count: Option<u32>,
}

impl Presence {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty() && self.left.is_empty() && self.names.is_empty()
    }
}

/// Payload naming one user (`USER_CONNECTED`, `USER_DISCONNECTED`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRef {
    /// Who.
    pub user_id: UserId,
    /// When they joined the room (ours, in `USER_CONNECTED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<Millis>,
    /// When they left (ours, in `USER_DISCONNECTED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Millis>,
}

impl UserRef {
    /// Names a user, nothing more (as legacy actions do).
    pub fn of(user_id: UserId) -> Self {
        Self {
            user_id,
            joined_at: None,
            last_seen: None,
        }
    }
}

/// Payload of the server's `TYPING`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingUser {
    /// Who types.
    pub user_id: UserId,
    /// In their direct conversation with the receiver (not in the room).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
}

/// Payload of `RESUME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    /// The `since` the client asked with.
    pub since: Seq,
    /// Every message with `since < seq <= latestSeq` of the handshake, oldest first;
    /// empty when `gapTooBig`.
    pub messages: Vec<MessageRecord>,
    /// The server cannot send all that was missed: the client should start afresh from the
    /// handshake and page older history on demand.
    pub gap_too_big: bool,
    /// Names of the authors in `messages`.
    pub user_names: BTreeMap<UserId, String>,
}

/// Payload of `HISTORY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// The `before` the client asked with.
    pub before: Seq,
    /// The `with` the client asked with: a page of that direct conversation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<UserId>,
    /// Oldest first.
    pub messages: Vec<MessageRecord>,
    /// Whether older messages exist.
    pub has_more: bool,
    /// Names of the authors in `messages`.
    pub user_names: BTreeMap<UserId, String>,
}

/// Payload of `CONVERSATIONS`: the person's direct conversations, the latest first (at most
/// the room's `max_conversations`, and as many as the answer's byte budget holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversations {
    pub conversations: Vec<ConversationSummary>,
    /// Names of the people in them.
    pub user_names: BTreeMap<UserId, String>,
}

/// One direct conversation, as the room tells one of its two people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    /// The other person.
    pub with: UserId,
    /// Its latest message (its history pages with `HISTORY_REQUEST`'s `with`).
    pub last: MessageRecord,
    /// Their messages to the person newer than the `since` the client identified with (what
    /// arrived while it was away; 0 without `since`).
    pub unread: u32,
}

/// Payload of `SEARCH_RESULTS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResults {
    /// The query, as asked.
    pub query: String,
    /// The `before` it was asked with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Seq>,
    /// The nonce it was asked with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Newest first.
    pub messages: Vec<MessageRecord>,
    /// Search on with `before` this seq for older results; absent when the search has
    /// reached the start of the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Seq>,
    /// Names of the authors in `messages`.
    pub user_names: BTreeMap<UserId, String>,
}

/// Payload of `ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPayload {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// The nonce of the action refused, when it had one (ours): the client marks exactly
    /// that message, whatever else is still waiting for its echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl ServerAction {
    /// Serialises to the JSON text of one WebSocket frame.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs (string keys, no floats, no custom impls) cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// Shorthand for an `ERROR` action.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerAction::Error(ErrorPayload {
            code,
            message: message.into(),
            nonce: None,
        })
    }

    /// An `ERROR` that names the nonce of the action it refuses.
    pub fn error_for(code: ErrorCode, message: impl Into<String>, nonce: Option<String>) -> Self {
        ServerAction::Error(ErrorPayload {
            code,
            message: message.into(),
            nonce,
        })
    }
}

impl ClientAction {
    /// Serialises to the JSON text of one WebSocket frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}
