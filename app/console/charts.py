"""Small server-made SVG charts: no chart library, no script, nothing loaded from elsewhere."""

from markupsafe import Markup, escape

BAR = "#3b82f6"
AXIS = "#94a3b8"


def column_chart(points: list[tuple[str, float]], *, title: str, width: int = 720, height: int = 160) -> Markup:
    """Vertical bars, one per (label, value); every few labels are written under the axis."""
    top, bottom, left = 16, 24, 32
    plot_h = height - top - bottom
    peak = max((v for _, v in points), default=0) or 1
    step = (width - left) / max(len(points), 1)
    label_every = max(len(points) // 8, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" stroke="{AXIS}"/>',
        f'<text x="0" y="{top + 4}" class="tick">{_number(peak)}</text>',
    ]
    for i, (label, value) in enumerate(points):
        bar_h = plot_h * value / peak
        x = left + i * step
        parts.append(
            f'<rect x="{x + step * 0.15:.1f}" y="{top + plot_h - bar_h:.1f}" width="{step * 0.7:.1f}" '
            f'height="{bar_h:.1f}" fill="{BAR}"><title>{escape(label)}: {_number(value)}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{height - 6}" class="tick" text-anchor="middle">'
                         f"{escape(label)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_list(items: list[tuple[str, float]], *, title: str, colors: dict[str, str] | None = None) -> Markup:
    """Horizontal bars with their labels and values, for a handful of categories."""
    width, row = 420, 26
    height = row * max(len(items), 1) + 8
    peak = max((v for _, v in items), default=0) or 1
    left, right = 80, 50
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        bar_w = (width - left - right) * value / peak
        color = (colors or {}).get(label, BAR)
        parts.append(f'<text x="{left - 8}" y="{y + 16}" class="tick" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{bar_w:.1f}" height="{row - 8}" fill="{color}"/>')
        parts.append(f'<text x="{left + bar_w + 6:.1f}" y="{y + 16}" class="tick">{_number(value)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or value >= 100 else f"{value:,.1f}"
