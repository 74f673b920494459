//! Times and dates as people read them (in the browser's time zone), and quotes of a
//! message.

use protocol::Millis;

/// The start of a message's text as a person reads it (emoji shown, markup dropped), on one
/// line, to quote it.
pub fn excerpt(raw: &str) -> String {
    const SHOWN: usize = 80;
    let line = protocol::Renderer::new().plain_text(raw);
    match line.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A local calendar day, comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day {
    year: u32,
    month: u32,
    date: u32,
    weekday: u32,
}

fn date(ms: Millis) -> js_sys::Date {
    js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64))
}

/// The local day of a timestamp.
pub fn day(ms: Millis) -> Day {
    let d = date(ms);
    Day {
        year: d.get_full_year(),
        month: d.get_month(),
        date: d.get_date(),
        weekday: d.get_day(),
    }
}

/// A local calendar day and the times it covers: messages in it need no date lookup of their
/// own (each lookup is a call into JavaScript, and the log groups every message by day).
#[derive(Debug, Clone, Copy)]
pub struct DaySpan {
    pub day: Day,
    /// Local midnight that starts the day, and the next one, in milliseconds.
    start: Millis,
    end: Millis,
}

impl DaySpan {
    pub fn contains(&self, ms: Millis) -> bool {
        (self.start..self.end).contains(&ms)
    }
}

/// The local day of a timestamp, with its bounds (daylight saving time included).
pub fn day_span(ms: Millis) -> DaySpan {
    let day = day(ms);
    let midnight = |date: u32| {
        js_sys::Date::new_with_year_month_day(day.year, day.month as i32, date as i32).get_time()
            as Millis
    };
    DaySpan {
        day,
        start: midnight(day.date),
        end: midnight(day.date + 1),
    }
}

/// `HH:MM`, 24-hour, local time.
pub fn hh_mm(ms: Millis) -> String {
    let d = date(ms);
    format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
}

/// Machine-readable time for `<time datetime>`.
pub fn iso(ms: Millis) -> String {
    String::from(date(ms).to_iso_string())
}

/// "4 December 2026", local.
pub fn calendar_date(ms: Millis) -> String {
    let d = date(ms);
    format!(
        "{} {} {}",
        d.get_date(),
        MONTHS[d.get_month() as usize % 12],
        d.get_full_year()
    )
}

/// How long ago `at` was, as a person says it: "just now", "5 minutes ago", "3 hours ago",
/// "yesterday", or the date.
pub fn ago(at: Millis, now: Millis) -> String {
    let minutes = (now - at).max(0) / 60_000;
    match minutes {
        0 => "just now".to_owned(),
        1 => "a minute ago".to_owned(),
        2..=59 => format!("{minutes} minutes ago"),
        60..=119 => "an hour ago".to_owned(),
        120..=1439 => format!("{} hours ago", minutes / 60),
        _ if day(at) == day(now - 86_400_000) => "yesterday".to_owned(),
        _ => format!("on {}", calendar_date(at)),
    }
}

/// "Today", "Yesterday", or "Saturday 28 November 2026".
pub fn day_label(of: Day, today: Day, yesterday: Day) -> String {
    if of == today {
        "Today".to_owned()
    } else if of == yesterday {
        "Yesterday".to_owned()
    } else {
        format!(
            "{} {} {} {}",
            WEEKDAYS[of.weekday as usize % 7],
            of.date,
            MONTHS[of.month as usize % 12],
            of.year
        )
    }
}

/// Unicode NFC, by the browser (`String.prototype.normalize`): the same names rule as the
/// server's without shipping normalisation tables in the WASM download. Native builds (the
/// client's unit tests) leave text as it is.
pub fn nfc(text: &str) -> String {
    #[cfg(target_arch = "wasm32")]
    {
        String::from(js_sys::JsString::from(text).normalize("NFC"))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        text.to_owned()
    }
}

/// A message's HTML with each table in a box that scrolls sideways and can be reached by
/// keyboard, so that a wide table scrolls inside its message instead of widening the page.
/// The HTML is our own renderer's (tables come out as a bare `<table>`), and what is added is
/// fixed text.
pub fn message_html(renderer: &protocol::Renderer, raw: &str) -> std::rc::Rc<str> {
    let html = renderer.render(raw);
    if !html.contains("<table>") {
        return html.into();
    }
    html.replace(
        "<table>",
        "<div class=\"table-scroll\" tabindex=\"0\" role=\"group\" aria-label=\"Table\"><table>",
    )
    .replace("</table>", "</table></div>")
    .into()
}

/// A role as the people list and a profile say it.
pub fn role(role: protocol::Role) -> &'static str {
    match role {
        protocol::Role::Owner => "owner",
        protocol::Role::Moderator => "moderator",
    }
}
