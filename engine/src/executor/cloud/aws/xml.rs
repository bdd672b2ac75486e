//! Just enough XML for EC2 Query API answers: elements, text and the five entities
//! (attributes, comments and the declaration are skipped).

/// One element: its name, text (concatenated) and children in order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the child path `a/b/c`, if every step exists.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        let mut at = self;
        for part in path.split('/') {
            at = at.child(part)?;
        }
        Some(at.text.as_str())
    }

    /// The `<item>` children of the child path `path`.
    pub fn items(&self, path: &str) -> Vec<&Element> {
        let mut at = self;
        for part in path.split('/') {
            match at.child(part) {
                Some(c) => at = c,
                None => return Vec::new(),
            }
        }
        at.children.iter().filter(|c| c.name == "item").collect()
    }

    /// The first element named `name` anywhere below (depth first).
    pub fn find(&self, name: &str) -> Option<&Element> {
        self.children.iter().find_map(|c| {
            if c.name == name {
                Some(c)
            } else {
                c.find(name)
            }
        })
    }
}

/// The document's root element, or why the text is not one.
pub fn parse(text: &str) -> Result<Element, String> {
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let content = &rest[..open];
        if let Some(top) = stack.last_mut() {
            top.text.push_str(&unescape(content));
        }
        rest = &rest[open..];
        let close = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..close];
        rest = &rest[close + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let done = stack.pop().ok_or("unbalanced close tag")?;
            if done.name != name.trim() {
                return Err(format!("</{}> closes <{}>", name.trim(), done.name));
            }
            stack
                .last_mut()
                .ok_or("unbalanced close tag")?
                .children
                .push(done);
            if stack.is_empty() {
                return Err("unbalanced close tag".into());
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = tag
            .split_whitespace()
            .next()
            .ok_or("empty tag")?
            .to_string();
        let element = Element {
            name,
            ..Element::default()
        };
        if self_closing {
            stack.last_mut().ok_or("no parent")?.children.push(element);
        } else {
            stack.push(element);
        }
    }
    if stack.len() != 1 {
        return Err("unclosed element".into());
    }
    let mut document = stack.pop().ok_or("empty document")?;
    match document.children.len() {
        1 => Ok(document.children.remove(0)),
        _ => Err("not one root element".into()),
    }
}

fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_items_and_entities() {
        let doc = parse(
            "<?xml version=\"1.0\"?>\n<R xmlns=\"x\"><set><item><id>a</id><t/></item><item><id>b &amp; c</id></item></set></R>",
        )
        .unwrap();
        let items = doc.items("set");
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].text_at("id"), Some("b & c"));
        assert_eq!(doc.find("id").map(|e| e.text.as_str()), Some("a"));
        assert!(doc.items("none").is_empty());
    }

    #[test]
    fn malformed_documents_are_errors() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("<a></a><b></b>").is_err());
        assert!(parse("<a").is_err());
    }
}
