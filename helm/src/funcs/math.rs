//! Sprig's arithmetic: integer functions convert their arguments the way spf13/cast does
//! (`int "12"` is 12, `int 2.9` is 2), float functions (`addf`...) work on float64.

use crate::exec::FuncMap;
use crate::value::Value;

use super::{add, arg, error, last, str_arg, to_f64, to_i64};

pub(super) fn register(m: &mut FuncMap) {
    add(m, "add", |a| {
        Ok(Value::Int(
            a.iter().map(to_i64).fold(0i64, i64::wrapping_add),
        ))
    });
    add(m, "add1", |a| {
        Ok(Value::Int(to_i64(last(a)).wrapping_add(1)))
    });
    add(m, "sub", |a| {
        Ok(Value::Int(
            to_i64(arg(a, 0)).wrapping_sub(to_i64(arg(a, 1))),
        ))
    });
    add(m, "mul", |a| {
        Ok(Value::Int(
            a.iter().map(to_i64).fold(1i64, i64::wrapping_mul),
        ))
    });
    add(m, "div", |a| {
        let d = to_i64(arg(a, 1));
        if d == 0 {
            return Err(error("div", "integer divide by zero"));
        }
        Ok(Value::Int(to_i64(arg(a, 0)).wrapping_div(d)))
    });
    add(m, "mod", |a| {
        let d = to_i64(arg(a, 1));
        if d == 0 {
            return Err(error("mod", "integer divide by zero"));
        }
        Ok(Value::Int(to_i64(arg(a, 0)).wrapping_rem(d)))
    });
    for name in ["max", "biggest"] {
        add(m, name, |a| {
            Ok(Value::Int(a.iter().map(to_i64).max().unwrap_or(0)))
        });
    }
    add(m, "min", |a| {
        Ok(Value::Int(a.iter().map(to_i64).min().unwrap_or(0)))
    });
    add(m, "addf", |a| Ok(Value::Float(a.iter().map(to_f64).sum())));
    add(m, "add1f", |a| Ok(Value::Float(to_f64(last(a)) + 1.0)));
    add(m, "subf", |a| {
        let mut it = a.iter().map(to_f64);
        let first = it.next().unwrap_or(0.0);
        Ok(Value::Float(it.fold(first, |acc, x| acc - x)))
    });
    add(m, "mulf", |a| {
        Ok(Value::Float(a.iter().map(to_f64).product()))
    });
    add(m, "divf", |a| {
        let mut it = a.iter().map(to_f64);
        let first = it.next().unwrap_or(0.0);
        Ok(Value::Float(it.fold(first, |acc, x| acc / x)))
    });
    add(m, "maxf", |a| {
        Ok(Value::Float(
            a.iter().map(to_f64).fold(f64::NEG_INFINITY, f64::max),
        ))
    });
    add(m, "minf", |a| {
        Ok(Value::Float(
            a.iter().map(to_f64).fold(f64::INFINITY, f64::min),
        ))
    });
    add(m, "floor", |a| Ok(Value::Float(to_f64(last(a)).floor())));
    add(m, "ceil", |a| Ok(Value::Float(to_f64(last(a)).ceil())));
    add(m, "round", |a| {
        let places = a.get(1).map(to_i64).unwrap_or(0) as i32;
        let factor = 10f64.powi(places);
        Ok(Value::Float((to_f64(arg(a, 0)) * factor).round() / factor))
    });
    for name in ["int", "int64"] {
        add(m, name, |a| Ok(Value::Int(to_i64(last(a)))));
    }
    add(m, "float64", |a| Ok(Value::Float(to_f64(last(a)))));
    add(m, "atoi", |a| {
        Ok(Value::Int(str_arg(last(a)).trim().parse().unwrap_or(0)))
    });
    add(m, "toDecimal", |a| {
        Ok(Value::Int(
            i64::from_str_radix(str_arg(last(a)).trim(), 8).unwrap_or(0),
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &[Value]) -> Value {
        let mut m = FuncMap::new();
        register(&mut m);
        m.get(name).unwrap()(args).unwrap()
    }

    #[test]
    fn integer_math_casts_like_sprig() {
        assert_eq!(
            call(
                "add",
                &[Value::Int(1), Value::Float(2.0), Value::String("3".into())]
            ),
            Value::Int(6)
        );
        assert_eq!(call("int", &[Value::Float(2.9)]), Value::Int(2));
        assert_eq!(call("sub", &[Value::Int(5), Value::Int(7)]), Value::Int(-2));
        assert_eq!(
            call("max", &[Value::Int(5), Value::Int(7), Value::Int(1)]),
            Value::Int(7)
        );
        assert_eq!(call("div", &[Value::Int(7), Value::Int(2)]), Value::Int(3));
        assert_eq!(call("floor", &[Value::Float(2.5)]), Value::Float(2.0));
    }
}
