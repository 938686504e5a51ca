//! Go's float formatters, which sops uses in four different places (spec §10 item 3):
//! - [`format_f`]: `strconv.FormatFloat(x,'f',-1,64)`, the canonical bytes for the cipher and MAC (§1.3);
//! - [`format_g`]: `FormatFloat(x,'g',-1,64)`, YAML output (§7.1);
//! - [`format_json`]: Go `encoding/json`, JSON output (§7.2);
//! - [`format_dotenv`]: `FormatFloat(x,'G',-1,64)` plus `.0`, dotenv output (§7.3).
//!
//! All start from the shortest round-trip digits, which Rust's `{:e}` gives.

/// Shortest round-trip decimal digits and the decimal exponent of the first digit:
/// `x = 0.d1d2d3... * 10^(exp+1)`, i.e. `d1.d2d3... * 10^exp`. For a finite, nonzero `x`.
fn shortest_digits(x: f64) -> (String, i32) {
    let s = format!("{:e}", x.abs());
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    (digits, exp.parse().unwrap_or(0))
}

fn sign(x: f64) -> &'static str {
    if x.is_sign_negative() {
        "-"
    } else {
        ""
    }
}

/// Plain positional notation of `digits * 10^(exp - len + 1)`.
fn positional(digits: &str, exp: i32) -> String {
    let n = digits.len() as i32;
    if exp < 0 {
        let zeros = (-exp - 1) as usize;
        format!("0.{}{}", "0".repeat(zeros), digits)
    } else if exp + 1 >= n {
        format!("{}{}", digits, "0".repeat((exp + 1 - n) as usize))
    } else {
        let (int, frac) = digits.split_at((exp + 1) as usize);
        format!("{int}.{frac}")
    }
}

/// Exponent notation `d.ddde±XX` with at least two exponent digits (Go's `%e` style).
fn exponential(digits: &str, exp: i32, e: char) -> String {
    let mut s = String::new();
    s.push_str(&digits[..1]);
    if digits.len() > 1 {
        s.push('.');
        s.push_str(&digits[1..]);
    }
    s.push(e);
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:02}", exp.unsigned_abs()));
    s
}

/// Go `strconv.FormatFloat(x, 'f', -1, 64)`: `+Inf`, `-Inf`, `NaN`, `-0`, never an exponent.
pub fn format_f(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if x == 0.0 {
        return format!("{}0", sign(x));
    }
    let (digits, exp) = shortest_digits(x);
    format!("{}{}", sign(x), positional(&digits, exp))
}

/// Go `strconv.FormatFloat(x, 'g', -1, 64)` with `e` (or `E` when `upper`). For shortest
/// formatting Go fixes the precision used in the decision at 6: exponent form iff the
/// decimal exponent is < -4 or >= 6. Infinities and NaN as `+Inf`/`-Inf`/`NaN`.
fn format_g_inner(x: f64, upper: bool) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if x == 0.0 {
        return format!("{}0", sign(x));
    }
    let (digits, exp) = shortest_digits(x);
    let body = if !(-4..6).contains(&exp) {
        exponential(&digits, exp, if upper { 'E' } else { 'e' })
    } else {
        positional(&digits, exp)
    };
    format!("{}{}", sign(x), body)
}

/// Go `strconv.FormatFloat(x, 'g', -1, 64)` (YAML output of floats; go-yaml then maps
/// infinities and NaN to `.inf`/`-.inf`/`.nan`, which the YAML emitter does).
pub fn format_g(x: f64) -> String {
    format_g_inner(x, false)
}

/// Go `encoding/json` float output: fixed notation unless |x| < 1e-6 or |x| >= 1e21, then
/// exponent form with a minimal exponent (`1e+21`, `1e-7`). `None` for NaN and ±Inf, which
/// JSON cannot hold (sops exit 4).
pub fn format_json(x: f64) -> Option<String> {
    if !x.is_finite() {
        return None;
    }
    if x == 0.0 {
        return Some(format!("{}0", sign(x)));
    }
    let abs = x.abs();
    if !(1e-6..1e21).contains(&abs) {
        let (digits, exp) = shortest_digits(x);
        let mut s = String::from(sign(x));
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        s.push_str(&exp.unsigned_abs().to_string());
        return Some(s);
    }
    Some(format_f(x))
}

/// sops' dotenv conversion of a float: `FormatFloat(x, 'G', -1, 64)`, plus `.0` when the
/// result has neither `.` nor `E` (spec §7.3).
pub fn format_dotenv(x: f64) -> String {
    let mut s = format_g_inner(x, true);
    if x.is_finite() && !s.contains('.') && !s.contains('E') {
        s.push_str(".0");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::approx_constant)] // 3.14159 is a formatting input, not PI
    fn format_f_matches_go_on_edge_values() {
        // Values checked against Go in shared/DEPENDENCIES.md and spec §1.3.
        let cases = [
            (1.0, "1"),
            (0.1, "0.1"),
            (1e21, "1000000000000000000000"),
            (1e-7, "0.0000001"),
            (1.5e-7, "0.00000015"),
            (123456789.0, "123456789"),
            (1e10, "10000000000"),
            (-0.0, "-0"),
            // spec §1.3's table cell says ...808, but its own note (shortest digits
            // 9223372036854776, zero-padded) is what Go prints.
            (9223372036854775807.0, "9223372036854776000"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (3.14159, "3.14159"),
        ];
        for (x, want) in cases {
            assert_eq!(format_f(x), want, "format_f({x:e})");
        }
        assert_eq!(format_f(5e-324).len(), 2 + 323 + 1);
    }

    #[test]
    fn format_g_matches_go_yaml_output() {
        // spec §7.1 examples.
        let cases = [
            (1.0, "1"),
            (1e10, "1e+10"),
            (1.5e-7, "1.5e-07"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (123456789.0, "1.23456789e+08"),
            (-0.0, "-0"),
            (18446744073709551616.0, "1.8446744073709552e+19"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e21, "1e+21"),
        ];
        for (x, want) in cases {
            assert_eq!(format_g(x), want, "format_g({x:e})");
        }
    }

    #[test]
    fn format_json_matches_go_encoding_json() {
        // spec §7.2 examples.
        assert_eq!(format_json(1e10).unwrap(), "10000000000");
        assert_eq!(format_json(123456789.0).unwrap(), "123456789");
        assert_eq!(format_json(-0.0).unwrap(), "-0");
        assert_eq!(
            format_json(18446744073709551616.0).unwrap(),
            "18446744073709552000"
        );
        assert_eq!(format_json(1e21).unwrap(), "1e+21");
        assert_eq!(format_json(1.5e-7).unwrap(), "1.5e-7");
        assert_eq!(format_json(1e-7).unwrap(), "1e-7");
        assert_eq!(format_json(0.000001).unwrap(), "0.000001");
        assert_eq!(format_json(f64::NAN), None);
    }

    #[test]
    fn format_dotenv_matches_sops() {
        // spec §7.3 examples.
        assert_eq!(format_dotenv(100.0), "100.0");
        assert_eq!(format_dotenv(1.5), "1.5");
        assert_eq!(format_dotenv(1e21), "1E+21");
        assert_eq!(format_dotenv(1e6), "1E+06");
    }
}
