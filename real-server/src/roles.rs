//! `real-server role`: the operator's roles, on the room's store (either store). A server of
//! the room that is running reads roles when it starts; it never overwrites one meanwhile (a
//! store's user write leaves the role as it is).

use anyhow::{Context as _, bail};

use crate::config::RoleAction;
use crate::store::{Store, Write};

/// Carries out `action` on room `room` of `store`; what to print.
pub async fn run<S: Store>(store: &S, room: &str, action: &RoleAction) -> anyhow::Result<String> {
    let snapshot = store
        .load_snapshot(room, 0)
        .await
        .context("reading the room's people")?;
    let mut users = snapshot.users;
    users.sort_by(|a, b| (b.role, &a.name, &a.id).cmp(&(a.role, &b.name, &b.id)));
    let role_name = |role: Option<protocol::Role>| match role {
        Some(protocol::Role::Owner) => "owner",
        Some(protocol::Role::Moderator) => "moderator",
        None => "member",
    };
    match action {
        RoleAction::List { all } => {
            let lines: Vec<String> = users
                .iter()
                .filter(|u| *all || u.role.is_some())
                .map(|u| format!("{}\t{}\t{}", u.id, role_name(u.role), u.name))
                .collect();
            if lines.is_empty() {
                return Ok(format!(
                    "nobody in room \"{room}\" has a role (`role list --all` lists everyone)"
                ));
            }
            Ok(lines.join("\n"))
        }
        RoleAction::Grant { user_id, .. } | RoleAction::Revoke { user_id } => {
            let role = match action {
                RoleAction::Grant { role, .. } => Some(protocol::Role::from(*role)),
                _ => None,
            };
            let Some(user) = users.iter().find(|u| u.id == *user_id) else {
                bail!(
                    "room \"{room}\" has nobody with id {user_id} (`real-server role list --all` \
                     lists everyone, with their ids)"
                );
            };
            store
                .write_batch(
                    room,
                    vec![Write::Role {
                        user_id: user_id.clone(),
                        role,
                    }],
                )
                .await
                .map_err(|e| e.source)
                .context("writing the role")?;
            Ok(format!(
                "{user_id} ({}) is now {} in room \"{room}\"; a server of the room that is \
                 running takes it when it next starts",
                user.name,
                role_name(role)
            ))
        }
    }
}
