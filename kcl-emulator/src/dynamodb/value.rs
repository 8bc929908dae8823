//! DynamoDB attribute values: the wire form is DynamoDB JSON (`{"S": "x"}`); numbers are exact
//! decimals (up to 38 significant digits), compared and added without floating point.

use std::cmp::Ordering;

use serde_json::{Map, Value as Json};

use crate::wire::{ApiError, ApiResult};

/// An attribute value as stored: the DynamoDB JSON object (`{"S": ..}`, `{"N": ..}`, ...).
pub(crate) type AttrValue = Json;
/// An item: attribute name to value.
pub(crate) type Item = Map<String, Json>;

/// The type tag of a value (`S`, `N`, `B`, `BOOL`, `NULL`, `L`, `M`, `SS`, `NS`, `BS`).
pub(crate) fn type_of(value: &AttrValue) -> Option<&str> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.keys().next().map(String::as_str)
}

/// Deepest nesting of lists and maps DynamoDB stores (32 levels).
const MAX_NESTING: usize = 32;

/// Checks that `value` is a well-formed attribute value, normalizing numbers.
pub(crate) fn validate(value: &mut AttrValue) -> ApiResult<()> {
    validate_nested(value, 0)
}

fn validate_nested(value: &mut AttrValue, depth: usize) -> ApiResult<()> {
    if depth > MAX_NESTING {
        return Err(ApiError::validation(
            "Nesting Levels have exceeded supported limits",
        ));
    }
    let nested = |v: &mut AttrValue| validate_nested(v, depth + 1);
    let invalid =
        |why: &str| ApiError::validation(format!("Supplied AttributeValue is invalid: {why}"));
    let Some(map) = value.as_object_mut() else {
        return Err(invalid("not an object"));
    };
    if map.len() != 1 {
        return Err(invalid("an AttributeValue must have exactly one data type"));
    }
    let (kind, inner) = map.iter_mut().next().expect("one entry");
    match (kind.as_str(), inner) {
        ("S", Json::String(_)) | ("B", Json::String(_)) => Ok(()),
        ("N", Json::String(n)) => {
            *n = Decimal::parse(n)
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "The parameter cannot be converted to a numeric value: {n}"
                    ))
                })?
                .to_string();
            Ok(())
        }
        ("BOOL", Json::Bool(_)) | ("NULL", Json::Bool(true)) => Ok(()),
        ("L", Json::Array(items)) => items.iter_mut().try_for_each(nested),
        ("M", Json::Object(entries)) => entries.values_mut().try_for_each(nested),
        ("SS" | "BS", Json::Array(items)) if !items.is_empty() => {
            if items.iter().any(|i| !i.is_string()) {
                return Err(invalid("set members must be strings"));
            }
            let mut seen = std::collections::BTreeSet::new();
            if !items
                .iter()
                .all(|i| seen.insert(i.as_str().unwrap_or_default().to_owned()))
            {
                return Err(ApiError::validation("Input collection contains duplicates"));
            }
            Ok(())
        }
        ("NS", Json::Array(items)) if !items.is_empty() => {
            let mut seen = std::collections::BTreeSet::new();
            for item in items.iter_mut() {
                let text = item
                    .as_str()
                    .ok_or_else(|| invalid("set members must be strings"))?;
                let normalized = Decimal::parse(text)
                    .ok_or_else(|| {
                        ApiError::validation(format!(
                            "The parameter cannot be converted to a numeric value: {text}"
                        ))
                    })?
                    .to_string();
                if !seen.insert(normalized.clone()) {
                    return Err(ApiError::validation("Input collection contains duplicates"));
                }
                *item = Json::String(normalized);
            }
            Ok(())
        }
        ("SS" | "BS" | "NS", _) => Err(ApiError::validation(
            "One or more parameter values were invalid: An string set  may not be empty",
        )),
        _ => Err(invalid(&format!("unknown or mistyped data type {kind}"))),
    }
}

/// The size of an item as DynamoDB measures it for its limits (400 KB items, 1 MB pages,
/// 16 MB batch reads): attribute names plus values, binary counted raw rather than base64.
pub(crate) fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, v)| name.len() + value_size(v))
        .sum()
}

/// The size of a key value for the key size limits: UTF-8 bytes of a string, raw bytes of a
/// binary, DynamoDB's stored size of a number.
pub(crate) fn key_size(value: &AttrValue) -> usize {
    value_size(value)
}

/// The size of one value, by the rules of DynamoDB's "Item sizes and formats" guide.
fn value_size(value: &AttrValue) -> usize {
    let number = |n: &Json| {
        let digits = n
            .as_str()
            .and_then(Decimal::parse)
            .map_or(0, |d| d.digits.len());
        digits.div_ceil(2) + 1
    };
    let binary = |b: &Json| {
        use base64::Engine as _;
        let text = b.as_str().unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_or(text.len(), |raw| raw.len())
    };
    let Some(kind) = type_of(value) else {
        return 0;
    };
    let inner = &value[kind];
    let members = || inner.as_array().into_iter().flatten();
    match kind {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => number(inner),
        "B" => binary(inner),
        "SS" => members().map(|m| m.as_str().map_or(0, str::len)).sum(),
        "NS" => members().map(number).sum(),
        "BS" => members().map(binary).sum(),
        // Lists and maps cost 3 bytes, and each element one more.
        "L" => 3 + members().map(|v| 1 + value_size(v)).sum::<usize>(),
        "M" => {
            3 + inner.as_object().map_or(0, |entries| {
                entries
                    .iter()
                    .map(|(k, v)| 1 + k.len() + value_size(v))
                    .sum()
            })
        }
        _ => 1,
    }
}

/// Total order used for sort keys and comparisons of same-typed scalars; `None` across types.
pub(crate) fn compare(a: &AttrValue, b: &AttrValue) -> Option<Ordering> {
    match (type_of(a)?, type_of(b)?) {
        ("S", "S") => Some(a["S"].as_str()?.cmp(b["S"].as_str()?)),
        ("N", "N") => {
            Some(Decimal::parse(a["N"].as_str()?)?.cmp(&Decimal::parse(b["N"].as_str()?)?))
        }
        ("B", "B") => {
            use base64::Engine as _;
            let engine = base64::engine::general_purpose::STANDARD;
            Some(
                engine
                    .decode(a["B"].as_str()?)
                    .ok()?
                    .cmp(&engine.decode(b["B"].as_str()?).ok()?),
            )
        }
        (x, y) if x == y => (a == b).then_some(Ordering::Equal),
        _ => None,
    }
}

/// Equality as DynamoDB defines it (numbers by value, sets ignoring order).
pub(crate) fn equal(a: &AttrValue, b: &AttrValue) -> bool {
    match (type_of(a), type_of(b)) {
        (Some("N"), Some("N")) | (Some("S"), Some("S")) | (Some("B"), Some("B")) => {
            compare(a, b) == Some(Ordering::Equal)
        }
        (Some(x @ ("SS" | "NS" | "BS")), Some(y)) if x == y => {
            let set = |v: &AttrValue| -> std::collections::BTreeSet<String> {
                v[x].as_array()
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            set(a) == set(b)
        }
        _ => a == b,
    }
}

/// An exact decimal: sign, digits without leading zeros, and a power-of-ten exponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal {
    negative: bool,
    /// Most significant first; empty for zero.
    digits: Vec<u8>,
    exponent: i32,
}

impl Decimal {
    /// Parses DynamoDB number text: optional sign, digits, optional fraction and exponent;
    /// at most 38 significant digits, magnitude within 1e-130 .. 1e126.
    pub(crate) fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], rest[at + 1..].parse::<i32>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
        let mut exponent = exp.checked_sub(i32::try_from(frac.len()).ok()?)?;
        while digits.first() == Some(&0) {
            digits.remove(0);
        }
        while digits.last() == Some(&0) {
            digits.pop();
            exponent += 1;
        }
        if digits.len() > 38 {
            return None;
        }
        if !digits.is_empty() {
            let magnitude = digits.len() as i32 + exponent;
            if !(-129..=126).contains(&magnitude) {
                return None;
            }
        }
        let zero = digits.is_empty();
        Some(Decimal {
            negative: negative && !zero,
            digits,
            exponent: if zero { 0 } else { exponent },
        })
    }

    fn magnitude_cmp(&self, other: &Decimal) -> Ordering {
        let len_a = self.digits.len() as i32 + self.exponent;
        let len_b = other.digits.len() as i32 + other.exponent;
        match (self.digits.is_empty(), other.digits.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        len_a.cmp(&len_b).then_with(|| {
            let n = self.digits.len().max(other.digits.len());
            (0..n)
                .map(|i| {
                    (
                        self.digits.get(i).copied().unwrap_or(0),
                        other.digits.get(i).copied().unwrap_or(0),
                    )
                })
                .find(|(a, b)| a != b)
                .map_or(Ordering::Equal, |(a, b)| a.cmp(&b))
        })
    }

    fn aligned(&self, exponent: i32, width: usize) -> Vec<u8> {
        let mut out = self.digits.clone();
        out.extend(std::iter::repeat_n(0, (self.exponent - exponent) as usize));
        let mut padded = vec![0; width.saturating_sub(out.len())];
        padded.extend(out);
        padded
    }

    /// `self + other`, exactly; `None` beyond 38 significant digits.
    pub(crate) fn add(&self, other: &Decimal) -> Option<Decimal> {
        if self.digits.is_empty() {
            return Some(other.clone());
        }
        if other.digits.is_empty() {
            return Some(self.clone());
        }
        let exponent = self.exponent.min(other.exponent);
        let width = (self.digits.len() as i32 + self.exponent - exponent)
            .max(other.digits.len() as i32 + other.exponent - exponent)
            as usize
            + 1;
        let a = self.aligned(exponent, width);
        let b = other.aligned(exponent, width);
        let (negative, digits) = if self.negative == other.negative {
            let mut out = vec![0u8; width];
            let mut carry = 0;
            for i in (0..width).rev() {
                let sum = a[i] + b[i] + carry;
                out[i] = sum % 10;
                carry = sum / 10;
            }
            (self.negative, out)
        } else {
            let (big, small, negative) = match self.magnitude_cmp(other) {
                Ordering::Less => (&b, &a, other.negative),
                _ => (&a, &b, self.negative),
            };
            let mut out = vec![0u8; width];
            let mut borrow = 0i8;
            for i in (0..width).rev() {
                let mut d = big[i] as i8 - small[i] as i8 - borrow;
                borrow = i8::from(d < 0);
                if d < 0 {
                    d += 10;
                }
                out[i] = d as u8;
            }
            (negative, out)
        };
        let text = format!(
            "{}{}e{exponent}",
            if negative { "-" } else { "" },
            digits
                .iter()
                .map(|d| char::from(b'0' + d))
                .collect::<String>()
        );
        Decimal::parse(&text)
    }

    /// `-self`.
    pub(crate) fn negate(&self) -> Decimal {
        Decimal {
            negative: !self.negative && !self.digits.is_empty(),
            ..self.clone()
        }
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.magnitude_cmp(other),
            (true, true) => other.magnitude_cmp(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.digits.is_empty() {
            return f.write_str("0");
        }
        let digits: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        let sign = if self.negative { "-" } else { "" };
        if self.exponent >= 0 {
            write!(f, "{sign}{digits}{}", "0".repeat(self.exponent as usize))
        } else {
            let point = self.digits.len() as i32 + self.exponent;
            if point > 0 {
                write!(
                    f,
                    "{sign}{}.{}",
                    &digits[..point as usize],
                    &digits[point as usize..]
                )
            } else {
                write!(f, "{sign}0.{}{digits}", "0".repeat((-point) as usize))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimals_normalize_compare_and_add_exactly() {
        let d = |s| Decimal::parse(s).unwrap();
        assert_eq!(d("007.50").to_string(), "7.5");
        assert_eq!(d("1e3").to_string(), "1000");
        assert_eq!(d("-0").to_string(), "0");
        assert_eq!(d("0.1").add(&d("0.2")).unwrap().to_string(), "0.3");
        assert_eq!(d("10").add(&d("-10.5")).unwrap().to_string(), "-0.5");
        assert_eq!(
            d("99999999999999999999999999999999999999")
                .to_string()
                .len(),
            38
        );
        assert!(Decimal::parse("999999999999999999999999999999999999999").is_none());
        assert!(d("-2") < d("-1.5") && d("2") > d("1.99"));
        assert!(Decimal::parse("1.2.3").is_none() && Decimal::parse("abc").is_none());
    }

    proptest! {
        #[test]
        fn addition_matches_integer_arithmetic(a in -1_000_000_000i64..1_000_000_000, b in -1_000_000_000i64..1_000_000_000) {
            let sum = Decimal::parse(&a.to_string()).unwrap().add(&Decimal::parse(&b.to_string()).unwrap()).unwrap();
            prop_assert_eq!(sum.to_string(), (a + b).to_string());
            prop_assert_eq!(Decimal::parse(&a.to_string()).unwrap().cmp(&Decimal::parse(&b.to_string()).unwrap()), a.cmp(&b));
        }
    }
}
