//! Mesh templates: the original CLI's five starting shapes of a mesh (groups, state keys, suggested roles and a
//! system prompt hint), kept as data so `cm templates` can show them and a mesh can be set up from one.

use serde::Serialize;

use crate::error::{Error, Result};

/// A group of a template and the roles a member may hold in it.
#[derive(Debug, Serialize)]
pub struct Group {
    pub name: &'static str,
    pub roles: &'static [&'static str],
}

/// One template, with the same names and values as the original CLI's.
#[derive(Debug, Serialize)]
pub struct Template {
    pub name: &'static str,
    pub description: &'static str,
    pub groups: &'static [Group],
    /// State keys and their initial values, in the order they are shown.
    pub state_keys: &'static [(&'static str, &'static str)],
    pub suggested_roles: &'static [&'static str],
    pub system_prompt_hint: &'static str,
}

const fn g(name: &'static str, roles: &'static [&'static str]) -> Group {
    Group { name, roles }
}

/// The five templates, in the original's order.
pub const TEMPLATES: &[Template] = &[
    Template {
        name: "dev-team",
        description: "Software development team with frontend, backend, and devops groups",
        groups: &[
            g("frontend", &["lead", "member"]),
            g("backend", &["lead", "member"]),
            g("devops", &["lead", "member"]),
            g("qa", &["lead", "member"]),
        ],
        state_keys: &[
            ("sprint", "current"),
            ("deploy-frozen", "false"),
            ("pr-queue", "[]"),
        ],
        suggested_roles: &["lead", "member", "reviewer"],
        system_prompt_hint: "You are part of a dev team. Coordinate with @frontend, @backend, @devops groups. \
Check state keys for sprint status and deploy freezes before making changes.",
    },
    Template {
        name: "research",
        description: "Research and analysis team focused on deep investigation and knowledge sharing",
        groups: &[
            g("analysis", &["lead", "analyst"]),
            g("writing", &["lead", "writer", "reviewer"]),
            g("data", &["engineer", "analyst"]),
        ],
        state_keys: &[
            ("research-topic", ""),
            ("phase", "exploration"),
            ("findings-count", "0"),
        ],
        suggested_roles: &["lead", "analyst", "writer", "reviewer"],
        system_prompt_hint: "You are part of a research team. Share findings via remember(), use recall() before \
starting new analysis. Coordinate phases through state keys.",
    },
    Template {
        name: "ops-incident",
        description: "Incident response team with oncall, comms, and engineering groups",
        groups: &[
            g("oncall", &["primary", "secondary"]),
            g("comms", &["lead", "scribe"]),
            g("engineering", &["lead", "responder"]),
        ],
        state_keys: &[
            ("incident-status", "investigating"),
            ("severity", "unknown"),
            ("commander", ""),
            ("timeline", "[]"),
        ],
        suggested_roles: &["commander", "primary-oncall", "scribe", "responder"],
        system_prompt_hint: "INCIDENT MODE. Priority: now for all messages. Update incident-status state. \
Commander coordinates. Scribe maintains timeline. Engineering fixes.",
    },
    Template {
        name: "simulation",
        description: "Load testing simulation with configurable time multiplier and user personas",
        groups: &[
            g("personas", &["admin", "user", "customer"]),
            g("observers", &["monitor", "analyst"]),
            g("control", &["orchestrator"]),
        ],
        state_keys: &[
            ("clock-speed", "x1"),
            ("sim-status", "paused"),
            ("tick-count", "0"),
            ("scenario", ""),
        ],
        suggested_roles: &["orchestrator", "persona", "monitor"],
        system_prompt_hint: "SIMULATION MODE. Follow the clock-speed state for time multiplier. Act according to \
your persona role and the simulated time. Report actions to @observers.",
    },
    Template {
        name: "personal",
        description: "Private mesh for a single user \u{2014} all sessions auto-join",
        groups: &[],
        state_keys: &[("focus", ""), ("todos", "[]")],
        suggested_roles: &[],
        system_prompt_hint: "Personal workspace. All your Claude Code sessions share this mesh. Use state keys to \
track focus and todos across sessions.",
    },
];

/// The template names, for completion and for the error that lists them.
pub const NAMES: &[&str] = &[
    "dev-team",
    "research",
    "ops-incident",
    "simulation",
    "personal",
];

/// The template called `name`, or a usage error that lists the five.
pub fn get(name: &str) -> Result<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name).ok_or_else(|| {
        Error::usage(format!(
            "no template named {name:?}; the templates are {}",
            NAMES.join(", ")
        ))
    })
}

/// `cm templates [NAME]`: every template, or the one named, for a person or as JSON Lines.
pub fn show(name: Option<&str>, out: &mut crate::out::Out) -> Result<()> {
    let chosen: Vec<&Template> = match name {
        Some(n) => vec![get(n)?],
        None => TEMPLATES.iter().collect(),
    };
    for t in chosen {
        if out.json {
            out.json(&t.to_json())?;
        } else if name.is_none() {
            out.line(format!("{:<13} {}", t.name, t.description))?;
        } else {
            out.line(format!("{}: {}", t.name, t.description))?;
            for gr in t.groups {
                out.line(format!(
                    "  group @{} (roles: {})",
                    gr.name,
                    gr.roles.join(", ")
                ))?;
            }
            for (k, v) in t.state_keys {
                out.line(format!("  state {k} = {v:?}"))?;
            }
            if !t.suggested_roles.is_empty() {
                out.line(format!(
                    "  suggested roles: {}",
                    t.suggested_roles.join(", ")
                ))?;
            }
            out.line(format!("  hint: {}", t.system_prompt_hint))?;
        }
    }
    Ok(())
}

/// The state key that records which template a mesh was set up from.
pub const STATE_KEY: &str = "mesh.template";

/// Sets a new mesh up from `t`: each state key written with its initial value (read as `cm-state set` reads a
/// value), the template recorded under [`STATE_KEY`], and the creator joined to each of its groups with the
/// group's first role (groups belong to members here, so the creator's joining is what makes them exist).
pub fn set_up(ctx: &crate::client::Ctx, t: &Template) -> Result<()> {
    use crate::services::{profile, state};
    for (k, v) in t.state_keys {
        state::set(ctx, k, state::parse_value(v), None)?;
    }
    state::set(ctx, STATE_KEY, t.record(), None)?;
    for gr in t.groups {
        let edit =
            profile::Edit::Join(gr.name.to_string(), gr.roles.first().map(|r| r.to_string()));
        profile::edit(ctx, &edit)?;
    }
    Ok(())
}

impl Template {
    /// What `mesh.template` holds: the template's name, groups, roles and hint, for members and `cm-mcp` to read.
    pub fn record(&self) -> serde_json::Value {
        let mut v = self.to_json();
        if let Some(o) = v.as_object_mut() {
            o.remove("type");
            o.remove("state_keys");
        }
        v
    }

    /// The template as one JSON object: state keys as an object, as in the original's files.
    pub fn to_json(&self) -> serde_json::Value {
        let keys: serde_json::Map<String, serde_json::Value> = self
            .state_keys
            .iter()
            .map(|(k, v)| ((*k).to_string(), serde_json::Value::from(*v)))
            .collect();
        serde_json::json!({
            "type": "template",
            "name": self.name,
            "description": self.description,
            "groups": self.groups,
            "state_keys": keys,
            "suggested_roles": self.suggested_roles,
            "system_prompt_hint": self.system_prompt_hint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_templates() {
        let names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        assert_eq!(names, NAMES);
    }

    #[test]
    fn an_unknown_name_lists_the_five() {
        let e = get("nope").unwrap_err();
        assert_eq!(e.code.exit_status(), 3);
        assert!(
            e.to_string()
                .contains("dev-team, research, ops-incident, simulation, personal")
        );
    }
}
