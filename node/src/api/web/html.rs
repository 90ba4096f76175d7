//! HTML building blocks for the server-rendered pages: escaping, query strings, and the shell every
//! page shares (header, navigation, the embedded stylesheet and script).

use std::fmt::Write;

/// Text made safe for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `key=value&…` with every byte outside the URL's unreserved set percent-encoded.
pub fn query(pairs: &[(&str, String)]) -> String {
    let encode = |text: &str| {
        text.bytes().fold(String::new(), |mut out, b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
            out
        })
    };
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// What a shared link to the page previews (OpenGraph).
pub struct Preview {
    pub url: String,
    pub image: String,
}

/// A page: its title, a one-line description, an optional link preview, and the body's HTML.
pub struct Page<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub preview: Option<Preview>,
    /// `generate`, `gallery` or `token`: marks the current navigation entry and tells the script.
    pub name: &'static str,
    /// JSON the script reads (`<script type="application/json" id="genmint-config">`).
    pub config: Option<String>,
    pub body: String,
}

impl Page<'_> {
    pub fn render(&self) -> String {
        let (title, description) = (escape(self.title), escape(self.description));
        let mut head = format!(
            "<meta property=\"og:title\" content=\"{title}\">\n<meta property=\"og:description\" content=\"{description}\">\n\
             <meta property=\"og:type\" content=\"website\">\n<meta property=\"og:site_name\" content=\"genmint\">\n"
        );
        if let Some(preview) = &self.preview {
            let _ = write!(
                head,
                "<meta property=\"og:url\" content=\"{}\">\n<meta property=\"og:image\" content=\"{}\">\n\
                 <meta name=\"twitter:card\" content=\"summary_large_image\">\n<link rel=\"canonical\" href=\"{0}\">\n",
                escape(&preview.url),
                escape(&preview.image)
            );
        }
        let config = self.config.as_deref().map_or(String::new(), |json| {
            // `</` cannot end the script element early once escaped.
            format!(
                "<script type=\"application/json\" id=\"genmint-config\">{}</script>\n",
                json.replace("</", "<\\/")
            )
        });
        let nav = |name: &str, href: &str, label: &str| {
            let current = if self.name == name { " aria-current=\"page\"" } else { "" };
            format!("<a href=\"{href}\"{current}>{label}</a>")
        };
        format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title} · genmint</title>\n<meta name=\"description\" content=\"{description}\">\n{head}\
             <link rel=\"stylesheet\" href=\"/assets/app.css\">\n{config}\
             <script type=\"module\" src=\"/assets/app.js\"></script>\n</head>\n\
             <body data-page=\"{page}\">\n<a class=\"skip\" href=\"#main\">Skip to content</a>\n\
             <header class=\"top\"><a class=\"brand\" href=\"/\">genmint</a>\n<nav aria-label=\"Main\">{generate} {gallery}</nav></header>\n\
             <main id=\"main\">\n{body}\n</main>\n</body>\n</html>\n",
            page = self.name,
            generate = nav("generate", "/", "Generate"),
            gallery = nav("gallery", "/gallery", "Gallery"),
            body = self.body,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_queries_cannot_break_out_of_their_place() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(
            query(&[("prompt", "a red & blue \"fox\"/é".into()), ("seed", "7".into())]),
            "prompt=a%20red%20%26%20blue%20%22fox%22%2F%C3%A9&seed=7"
        );
        let page = Page {
            title: "<t>",
            description: "d",
            preview: None,
            name: "generate",
            config: Some("{\"x\":\"</script><script>alert(1)</script>\"}".into()),
            body: String::new(),
        }
        .render();
        assert!(page.contains("<title>&lt;t&gt; · genmint</title>"), "{page}");
        assert!(!page.contains("</script><script>alert"), "{page}");
        assert!(page.contains("href=\"/\" aria-current=\"page\""), "{page}");
    }
}
