//! `menus graph`: the flow of a compiled menu as a Mermaid or Graphviz DOT picture.

use std::fmt::Write;

use super::graph::{Menu, NodeKind, Route};

/// The picture formats `menus graph --format` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
}

/// What a screen is, for its shape and caption.
enum Shape {
    Menu,
    Input,
    Pin,
    Action,
    Call,
    Return,
    End,
}

impl Shape {
    fn name(&self) -> &'static str {
        match self {
            Shape::Menu => "menu",
            Shape::Input => "input",
            Shape::Pin => "pin",
            Shape::Action => "action",
            Shape::Call => "call",
            Shape::Return => "return",
            Shape::End => "end",
        }
    }
}

#[derive(serde::Serialize)]
pub struct Way {
    pub from: usize,
    pub to: usize,
    pub label: String,
}

/// A menu's screens and the ways between them as data: the web phone draws its map
/// from this, with the screen a session is on lit.
#[derive(serde::Serialize)]
pub struct Drawing {
    pub service: String,
    pub codes: Vec<String>,
    /// Indices into `screens`.
    pub start: usize,
    pub home: usize,
    /// The keys every screen answers: Back, Home, More.
    pub keys: [String; 3],
    pub screens: Vec<DrawnScreen>,
    pub ways: Vec<Way>,
}

#[derive(serde::Serialize)]
pub struct DrawnScreen {
    pub name: String,
    /// `menu`, `input`, `pin`, `action`, `call`, `return` or `end`.
    pub shape: &'static str,
    /// The screen's name, then its text's first forty characters, on two lines.
    pub caption: String,
}

impl Menu {
    /// Draws every screen and every way between them, labelled in the first language;
    /// the screens in `broken` (indices: `menus check` found problems there) in red.
    pub fn picture(&self, format: Format, broken: &[usize]) -> String {
        let (nodes, edges) = self.shapes_and_edges();
        match format {
            Format::Mermaid => self.mermaid(&nodes, &edges, broken),
            Format::Dot => self.dot(&nodes, &edges, broken),
        }
    }

    /// What [`Menu::picture`] draws, as data.
    pub fn drawing(&self) -> Drawing {
        let (nodes, ways) = self.shapes_and_edges();
        let screens = nodes
            .into_iter()
            .zip(&self.screens)
            .map(|((shape, caption), node)| DrawnScreen {
                name: node.name.clone(),
                shape: shape.name(),
                caption: caption.replace("\\n", "\n"),
            })
            .collect();
        Drawing {
            service: self.service.clone(),
            codes: self.codes.clone(),
            start: self.start.0 as usize,
            home: self.home.0 as usize,
            keys: [self.keys.back.clone(), self.keys.home.clone(), self.keys.more.clone()],
            screens,
            ways,
        }
    }

    fn shapes_and_edges(&self) -> (Vec<(Shape, String)>, Vec<Way>) {
        let mut nodes = Vec::with_capacity(self.screens.len());
        let mut edges = Vec::new();
        let short = |s: String| {
            let one_line = s.replace('\n', " ");
            if one_line.chars().count() > 40 {
                one_line.chars().take(39).collect::<String>() + "…"
            } else {
                one_line
            }
        };
        for (from, node) in self.screens.iter().enumerate() {
            let mut edge = |to: usize, label: String| edges.push(Way { from, to, label });
            let route = |r: &Route| r.next.0 as usize;
            let shape = match &node.kind {
                NodeKind::Menu { items, options, .. } => {
                    let first = match items {
                        Some(it) => {
                            edge(it.next.0 as usize, format!("item of {} → {}", it.from.join("."), it.save));
                            it.max + 1
                        }
                        None => 1,
                    };
                    for (i, choice) in options.iter().enumerate() {
                        let label = short(self.templates.source(&choice.label, 0));
                        let label = match choice.when.and_then(|f| self.flags.get(usize::from(f))) {
                            Some(flag) => format!("{}. {label} [{}]", i + first, flag.name),
                            None => format!("{}. {label}", i + first),
                        };
                        edge(choice.next.0 as usize, label);
                    }
                    Shape::Menu
                }
                NodeKind::Confirm { yes, no, .. } => {
                    edge(yes.0 as usize, "1. yes".into());
                    edge(no.0 as usize, "2. no".into());
                    Shape::Menu
                }
                NodeKind::Router { routes, otherwise } => {
                    for (condition, next) in routes {
                        let source = self.templates.source(condition, 0);
                        let cond = source
                            .strip_prefix("{% if ")
                            .and_then(|c| c.strip_suffix(" %}1{% endif %}"))
                            .unwrap_or(&source);
                        edge(next.0 as usize, format!("if {}", short(cond.to_owned())));
                    }
                    edge(otherwise.0 as usize, "else".into());
                    Shape::Action
                }
                NodeKind::Call { journey, next } => {
                    edge(journey.0 as usize, "call".into());
                    edge(next.0 as usize, "after return".into());
                    Shape::Call
                }
                NodeKind::Return => Shape::Return,
                NodeKind::Input { kind, save, next, .. } => {
                    edge(next.0 as usize, format!("{kind:?} → {save}").to_lowercase());
                    Shape::Input
                }
                NodeKind::Pin { next, .. } => {
                    edge(next.0 as usize, "PIN".into());
                    Shape::Pin
                }
                NodeKind::Action { routes, other, .. } => {
                    let mut sorted: Vec<_> = routes.iter().collect();
                    sorted.sort_by_key(|(outcome, _)| outcome.as_str());
                    for (outcome, r) in sorted {
                        edge(route(r), outcome.as_str().into());
                    }
                    if let Some(r) = other {
                        edge(route(r), "other".into());
                    }
                    Shape::Action
                }
                NodeKind::End { .. } => Shape::End,
            };
            let caption = match &node.kind {
                NodeKind::Action { op, .. } => format!("{}\\n{op}", node.name),
                NodeKind::Router { .. } | NodeKind::Call { .. } | NodeKind::Return => node.name.clone(),
                NodeKind::Menu { text, .. }
                | NodeKind::Confirm { text, .. }
                | NodeKind::Input { text, .. }
                | NodeKind::Pin { text, .. }
                | NodeKind::End { text } => {
                    format!("{}\\n{}", node.name, short(self.templates.source(text, 0)))
                }
            };
            nodes.push((shape, caption));
        }
        (nodes, edges)
    }

    fn mermaid(&self, nodes: &[(Shape, String)], edges: &[Way], broken: &[usize]) -> String {
        let quote = |s: &str| s.replace('"', "#quot;").replace("\\n", "<br/>");
        let mut out = format!(
            "%% {} ({}), start: {}\nflowchart TD\n",
            self.service,
            self.codes.join(", "),
            self.screens[self.start.0 as usize].name
        );
        for (i, (shape, caption)) in nodes.iter().enumerate() {
            let (open, close) = match shape {
                Shape::Menu => ("[", "]"),
                Shape::Input => ("[/", "/]"),
                Shape::Pin => ("{{", "}}"),
                Shape::Action => ("{", "}"),
                Shape::Call => ("[[", "]]"),
                Shape::Return => ("((", "))"),
                Shape::End => ("([", "])"),
            };
            let _ = writeln!(out, "  {}{open}\"{}\"{close}", self.screens[i].name, quote(caption));
        }
        for e in edges {
            let _ = writeln!(
                out,
                "  {} -->|\"{}\"| {}",
                self.screens[e.from].name,
                quote(&e.label),
                self.screens[e.to].name
            );
        }
        if !broken.is_empty() {
            let names: Vec<&str> = broken.iter().map(|i| self.screens[*i].name.as_str()).collect();
            let _ = writeln!(out, "  classDef broken fill:#fdd,stroke:#c00,stroke-width:2px");
            let _ = writeln!(out, "  class {} broken", names.join(","));
        }
        out
    }

    fn dot(&self, nodes: &[(Shape, String)], edges: &[Way], broken: &[usize]) -> String {
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace("\\\\n", "\\n");
        let mut out = format!(
            "digraph \"{}\" {{\n  rankdir=TB;\n  node [fontname=\"sans-serif\"];\n",
            quote(&self.service)
        );
        for (i, (shape, caption)) in nodes.iter().enumerate() {
            let shape = match shape {
                Shape::Menu => "box",
                Shape::Input => "parallelogram",
                Shape::Pin => "hexagon",
                Shape::Action => "diamond",
                Shape::Call => "component",
                Shape::Return => "circle",
                Shape::End => "box, style=rounded, peripheries=2",
            };
            let style = if broken.contains(&i) {
                ", color=red, fontcolor=red"
            } else if i == self.start.0 as usize {
                ", penwidth=2"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  \"{}\" [shape={shape}{style}, label=\"{}\"];",
                self.screens[i].name,
                quote(caption)
            );
        }
        for e in edges {
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [label=\"{}\"];",
                self.screens[e.from].name,
                self.screens[e.to].name,
                quote(&e.label)
            );
        }
        out.push_str("}\n");
        out
    }
}
