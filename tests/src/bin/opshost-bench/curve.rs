//! The picture of time against size: opshost's dump and restore, mydumper's and myloader's,
//! and the server's streaming floor, at each scale the bench ran, as a self-contained SVG.

/// One line of the chart: its label, colour and (megabytes, seconds) points.
pub struct Line {
    pub label: &'static str,
    pub colour: &'static str,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

pub fn svg(title: &str, lines: &[Line]) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 440.0, 70.0, 220.0, 40.0, 50.0);
    let max_x = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).fold(1.0, f64::max) * 1.05;
    let max_y = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(1.0, f64::max) * 1.1;
    let x = |v: f64| left + v / max_x * (w - left - right);
    let y = |v: f64| h - bottom - v / max_y * (h - top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"22\" font-size=\"14\">{}</text>\n",
        escape(title)
    );
    // Axes and a few grid lines with their values.
    for i in 0..=5 {
        let (vx, vy) = (max_x * i as f64 / 5.0, max_y * i as f64 / 5.0);
        s += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{vy:.0} s</text>\n",
            w - right,
            y(vy),
            y(vy),
            left - 6.0,
            y(vy) + 4.0
        );
        s += &format!("<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{vx:.0} MB</text>\n", x(vx), h - bottom + 18.0);
    }
    s += &format!("<line x1=\"{left}\" x2=\"{left}\" y1=\"{top}\" y2=\"{}\" stroke=\"black\"/>\n", h - bottom);
    s += &format!("<line x1=\"{left}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", w - right, h - bottom, h - bottom);
    s += &format!("<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">MetaDB size on disk</text>\n", (left + w - right) / 2.0, h - 10.0);
    for (i, l) in lines.iter().enumerate() {
        let path: Vec<String> = l.points.iter().map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py))).collect();
        let dash = if l.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        s += &format!("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"/>\n", l.colour, path.join(" "));
        for &(px, py) in &l.points {
            s += &format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>\n", x(px), y(py), l.colour);
        }
        let ly = top + 10.0 + i as f64 * 20.0;
        s += &format!(
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{}\">{}</text>\n",
            w - right + 12.0,
            w - right + 36.0,
            l.colour,
            w - right + 42.0,
            ly + 4.0,
            escape(l.label)
        );
    }
    s + "</svg>\n"
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
