//! The moderation log and reports. Every moderation action (a removal, a time-out and its end,
//! a kick, a ban and its lifting, a role, the room's settings) and every report and its
//! resolution is an event of the room's log (`AuditEntry`, with a seq): stored before it is
//! told, to moderators and owners only (`AUDIT`, live); members see only the public effect
//! (`MODERATED`, `ROLE`, `ROOM`, a removed message). Anyone reports a room message, saying why
//! (`REPORT`): bounded per person (`reports_per_person` open at once) and for the room
//! (`max_open_reports`); the reporter gets their report's entry back as the answer. A
//! moderator resolves a report (`RESOLVE_REPORT`) and reads the log's latest entries and the
//! open reports (`AUDIT_REQUEST`). The room keeps the latest `audit_kept` entries and every
//! open report in memory (storage holds them all).

use super::post::PendingEvent;
use super::roles::checked_nonce;
use super::{ConnectionId, Room};
use crate::error::ErrorCode;
use crate::wire::{
    Audit, AuditAction, AuditEntry, AuditRequest, MAX_REASON_CHARS, Millis, Report, ResolveReport,
    ServerAction, UserId,
};

impl AuditEntry {
    /// An entry of `action` by `by` at `now`, about nobody yet.
    pub fn new(now: Millis, by: UserId, action: AuditAction) -> Self {
        Self {
            seq: 0,
            at: now,
            by,
            action,
            user_id: None,
            target: None,
            report: None,
            reason: None,
            until: None,
        }
    }
}

impl Room {
    /// Records a moderation event asked for on `from`: it waits for the log like a message,
    /// and is told once stored.
    pub(super) fn record_audit(
        &mut self,
        from: ConnectionId,
        entry: AuditEntry,
        nonce: Option<String>,
    ) {
        let answer = Some(from);
        self.accept(
            PendingEvent::Audit {
                entry,
                nonce,
                answer,
            },
            from,
        );
    }

    /// A moderation event, stored: kept, and told to the moderators and owners here (and to
    /// its reporter, answering their nonce).
    pub(super) fn settle_audit(
        &mut self,
        entry: AuditEntry,
        nonce: Option<String>,
        from: Option<ConnectionId>,
    ) {
        match entry.action {
            AuditAction::Report => self.open_reports.push(entry.clone()),
            AuditAction::Resolve => self.open_reports.retain(|r| Some(r.seq) != entry.report),
            _ => {}
        }
        self.audit.push_back(entry.clone());
        while self.audit.len() > self.config.audit_kept {
            self.audit.pop_front();
        }
        let mut readers: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.user.as_deref().is_some_and(|u| self.role_of(u).is_some()))
            .map(|(id, _)| *id)
            .collect();
        if let Some(from) = from
            && self.connections.contains_key(&from)
            && !readers.contains(&from)
        {
            readers.push(from);
        }
        readers.sort();
        for conn in readers {
            let answered = (Some(conn) == from).then(|| nonce.clone()).flatten();
            self.send(
                conn,
                ServerAction::Audit(Audit {
                    entries: vec![entry.clone()],
                    open_reports: Vec::new(),
                    live: true,
                    nonce: answered,
                }),
            );
        }
    }

    /// `REPORT`: anyone reports a room message they can see, saying why.
    pub(super) fn report(&mut self, now: Millis, conn: ConnectionId, asked: Report) {
        let nonce = checked_nonce(asked.nonce);
        let Some(user) = self.acting_user(now, conn, None, nonce.as_ref()) else {
            return;
        };
        let reason = asked.reason.trim();
        let refusal = if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            Some(format!(
                "a report says why, in 1 to {MAX_REASON_CHARS} characters"
            ))
        } else if !self
            .recent_message(asked.target)
            .is_some_and(|m| m.to.is_none() && !m.deleted)
        {
            Some("only a room message among the recent ones can be reported".to_owned())
        } else if self
            .reports_open_and_waiting()
            .any(|r| r.by == user && r.target == Some(asked.target))
        {
            Some("you reported that message already".to_owned())
        } else if self
            .reports_open_and_waiting()
            .filter(|r| r.by == user)
            .count()
            >= self.config.reports_per_person
        {
            Some(format!(
                "you have {} open reports: wait until moderators resolve them",
                self.config.reports_per_person
            ))
        } else if self.reports_open_and_waiting().count() >= self.config.max_open_reports {
            Some("the moderators have too many open reports; try again later".to_owned())
        } else {
            None
        };
        if let Some(text) = refusal {
            return self.refuse_for(conn, ErrorCode::InvalidReport, text, nonce.as_ref());
        }
        let author = self.recent_message(asked.target).map(|m| m.user_id.clone());
        let entry = AuditEntry {
            user_id: author,
            target: Some(asked.target),
            reason: Some(reason.to_owned()),
            ..AuditEntry::new(now, user, AuditAction::Report)
        };
        self.record_audit(conn, entry, nonce);
    }

    /// Open reports, stored or waiting for the log.
    fn reports_open_and_waiting(&self) -> impl Iterator<Item = &AuditEntry> {
        let waiting = self.pending.iter().filter_map(|p| match &p.event {
            PendingEvent::Audit { entry, .. } if entry.action == AuditAction::Report => Some(entry),
            _ => None,
        });
        self.open_reports.iter().chain(waiting)
    }

    /// `RESOLVE_REPORT`: a moderator or owner closes an open report.
    pub(super) fn resolve_report(&mut self, now: Millis, conn: ConnectionId, asked: ResolveReport) {
        let nonce = checked_nonce(asked.nonce);
        let refusal = "moderators and owners resolve reports";
        let Some(user) = self.acting_moderator(now, conn, nonce.as_ref(), refusal) else {
            return;
        };
        let Some(report) = self
            .open_reports
            .iter()
            .find(|r| r.seq == asked.report)
            .cloned()
        else {
            let text = "no open report has that seq";
            return self.refuse_for(conn, ErrorCode::InvalidReport, text, nonce.as_ref());
        };
        let entry = AuditEntry {
            user_id: report.user_id,
            target: report.target,
            report: Some(report.seq),
            ..AuditEntry::new(now, user, AuditAction::Resolve)
        };
        self.record_audit(conn, entry, nonce);
    }

    /// `AUDIT_REQUEST`: the latest entries, newest first, and the open reports.
    pub(super) fn audit_request(&mut self, now: Millis, conn: ConnectionId, asked: AuditRequest) {
        let nonce = checked_nonce(asked.nonce);
        let refusal = "moderators and owners read the moderation log";
        if self
            .acting_moderator(now, conn, nonce.as_ref(), refusal)
            .is_none()
        {
            return;
        }
        let audit = Audit {
            entries: self.audit.iter().rev().cloned().collect(),
            open_reports: self.open_reports.clone(),
            live: false,
            nonce,
        };
        self.send(conn, ServerAction::Audit(audit));
    }

    /// The moderation log's latest entries the room keeps, oldest first.
    pub fn audit_entries(&self) -> impl Iterator<Item = &AuditEntry> {
        self.audit.iter()
    }
}
