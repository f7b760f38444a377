//! DatanodeAdmin: decommissioning and recommissioning datanodes (superuser
//! only). The decision is persisted before the call returns.

use tusk_proto::dfs::datanode_info::AdminState;
use tusk_proto::dfs::{AdminAction, Caller, DatanodeInfo};
use tusk_proto::error::ErrorKind;

use super::Namesystem;
use crate::decommission::blocks_on;
use crate::error::{NamenodeError, Result};

impl Namesystem {
    /// DECOMMISSION puts the named datanodes in DECOMMISSION_IN_PROGRESS
    /// (a dead one is DECOMMISSIONED at once); RECOMMISSION returns them to
    /// NORMAL, after which their now surplus replicas are trimmed. `node` is
    /// a uuid, a transfer address or a host (every datanode on it).
    pub(crate) fn datanode_admin(&self, caller: &Caller, node: &str, action: AdminAction) -> Result<Vec<DatanodeInfo>> {
        let ugi = self.ugi(caller);
        let verb = match action {
            AdminAction::Decommission => "decommission",
            AdminAction::Recommission => "recommission",
        };
        if !ugi.superuser {
            return Err(NamenodeError::req(
                ErrorKind::PermissionDenied,
                format!("{verb} {node}: permission denied: user={} is not a superuser", ugi.user),
            ));
        }
        let node = node.trim();
        if node.is_empty() {
            return Err(NamenodeError::invalid(format!("{verb}: no datanode given")));
        }
        let infos = {
            let st = self.state.read();
            let mut dm = self.datanodes.lock();
            let mut repl = self.repl.lock();
            let found = dm.find(node);
            if found.is_empty() {
                // A recorded node that has not registered since the restart.
                if action == AdminAction::Recommission && dm.admin.remove_named(node) {
                    tracing::info!("{node}: removed from the decommissioned datanodes by {}", ugi.user);
                    Vec::new()
                } else {
                    return Err(NamenodeError::req(
                        ErrorKind::NotFound,
                        format!("{verb} {node}: no such datanode (give its uuid, transfer address host:port, or host)"),
                    ));
                }
            } else {
                for idx in &found {
                    let Some(d) = dm.get(*idx) else { continue };
                    let (alive, current, name) = (d.alive, d.admin, format!("{} ({})", d.id.datanode_uuid, d.id.transfer_addr));
                    match action {
                        AdminAction::Decommission if current == AdminState::Normal => {
                            let state = if alive { AdminState::DecommissionInProgress } else { AdminState::Decommissioned };
                            dm.set_admin_state(*idx, state);
                            tracing::info!("datanode {name}: {} by {}", state.as_str_name(), ugi.user);
                        }
                        AdminAction::Recommission if current != AdminState::Normal => {
                            dm.set_admin_state(*idx, AdminState::Normal);
                            repl.decommissioning.remove(idx);
                            if self.noting() {
                                for id in blocks_on(&st, *idx) {
                                    repl.note(id);
                                }
                            }
                            tracing::info!("datanode {name}: recommissioned by {}", ugi.user);
                        }
                        _ => {}
                    }
                }
                let counts = st.blocks.replica_counts();
                found.iter().filter_map(|i| dm.info(*i, counts.get(i).copied().unwrap_or(0))).collect()
            }
        };
        self.save_admin_set()?;
        Ok(infos)
    }
}
