//! The learning-rate schedule (linear warm-up, then plateau, poly or cosine) and
//! early stopping. The plateau state is saved in checkpoints so a resumed run
//! schedules exactly as before; poly and cosine depend on the step alone.

use serde::{Deserialize, Serialize};

use super::config::{ScheduleKind, ScheduleSection};

/// The learning rate of the optimiser step that follows `step` completed steps, in a
/// run of `total_steps` steps starting at `base_lr`; `plateau_lr` is the plateau
/// scheduler's current rate (used by [`ScheduleKind::Plateau`] only).
pub fn learning_rate(
    config: &ScheduleSection,
    base_lr: f64,
    plateau_lr: f64,
    step: usize,
    total_steps: usize,
) -> f64 {
    let warmup = config.warmup_steps;
    let warm = if step < warmup {
        (step + 1) as f64 / warmup as f64
    } else {
        1.0
    };
    let decay_steps = total_steps.saturating_sub(warmup).max(1) as f64;
    let progress = (step.saturating_sub(warmup) as f64 / decay_steps).clamp(0.0, 1.0);
    let lr = match config.kind {
        ScheduleKind::Plateau => plateau_lr,
        ScheduleKind::Poly => base_lr * (1.0 - progress).powf(config.poly_exponent),
        ScheduleKind::Cosine => {
            let floor = config.min_lr.min(base_lr);
            floor + (base_lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    };
    lr * warm
}

/// Scheduler state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    /// Current learning rate.
    pub lr: f64,
    /// Best metric seen (for the plateau test).
    pub best: Option<f64>,
    /// Epochs since the metric last improved by more than the threshold.
    pub bad_epochs: usize,
    /// Epochs since the best metric (for early stopping; any improvement counts).
    pub epochs_since_best: usize,
}

impl Plateau {
    /// Start at `lr`.
    pub fn new(lr: f64) -> Self {
        Plateau {
            lr,
            best: None,
            bad_epochs: 0,
            epochs_since_best: 0,
        }
    }

    /// Record an epoch's metric (higher is better; `None` counts as no improvement).
    /// Returns whether the learning rate was reduced (only the plateau schedule
    /// reduces it; with `plateau_after_signal`, not before the metric has first risen
    /// above the threshold).
    pub fn observe(&mut self, metric: Option<f64>, config: &ScheduleSection) -> bool {
        let improved = match (metric, self.best) {
            (Some(m), Some(b)) => m > b + config.plateau_threshold,
            (Some(m), None) => m.is_finite(),
            (None, _) => false,
        };
        let new_best = match (metric, self.best) {
            (Some(m), Some(b)) => m > b,
            (Some(m), None) => m.is_finite(),
            (None, _) => false,
        };
        if new_best {
            self.epochs_since_best = 0;
        } else {
            self.epochs_since_best += 1;
        }
        if improved {
            self.best = metric;
            self.bad_epochs = 0;
            return false;
        }
        if new_best {
            self.best = metric;
        }
        let waiting =
            config.plateau_after_signal && !self.best.is_some_and(|b| b > config.plateau_threshold);
        if config.kind != ScheduleKind::Plateau || waiting {
            return false;
        }
        self.bad_epochs += 1;
        if self.bad_epochs > config.plateau_patience {
            let reduced = (self.lr * config.plateau_factor).max(config.min_lr);
            self.bad_epochs = 0;
            if reduced < self.lr {
                self.lr = reduced;
                return true;
            }
        }
        false
    }

    /// Whether early stopping should end the run.
    pub fn should_stop(&self, config: &ScheduleSection) -> bool {
        config.early_stopping_patience > 0
            && self.epochs_since_best >= config.early_stopping_patience
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plateau() -> ScheduleSection {
        ScheduleSection {
            kind: ScheduleKind::Plateau,
            plateau_after_signal: false,
            ..ScheduleSection::default()
        }
    }

    #[test]
    fn halves_after_patience_epochs_without_improvement() {
        let config = plateau(); // factor 0.5, patience 3
        let mut p = Plateau::new(1e-3);
        assert!(!p.observe(Some(0.5), &config));
        for _ in 0..3 {
            assert!(!p.observe(Some(0.5), &config));
        }
        assert!(p.observe(Some(0.5), &config));
        assert_eq!(p.lr, 5e-4);
        assert!(!p.observe(Some(0.6), &config));
        assert_eq!(p.bad_epochs, 0);
        assert_eq!(p.lr, 5e-4);
    }

    #[test]
    fn early_stopping_counts_epochs_since_best() {
        let config = ScheduleSection {
            early_stopping_patience: 2,
            ..plateau()
        };
        let mut p = Plateau::new(1e-3);
        p.observe(Some(0.5), &config);
        p.observe(Some(0.4), &config);
        assert!(!p.should_stop(&config));
        p.observe(None, &config);
        assert!(p.should_stop(&config));
    }

    #[test]
    fn never_goes_below_min_lr() {
        let config = ScheduleSection {
            plateau_patience: 0,
            min_lr: 4e-4,
            ..plateau()
        };
        let mut p = Plateau::new(1e-3);
        for _ in 0..10 {
            p.observe(Some(0.1), &config);
        }
        assert_eq!(p.lr, 4e-4);
    }

    #[test]
    fn waits_for_the_metric_to_move_off_zero_before_counting() {
        let config = ScheduleSection {
            plateau_after_signal: true,
            ..plateau()
        };
        let mut p = Plateau::new(1e-3);
        for _ in 0..20 {
            assert!(!p.observe(Some(0.0), &config));
        }
        assert_eq!(p.lr, 1e-3);
        p.observe(Some(0.2), &config);
        for _ in 0..3 {
            assert!(!p.observe(Some(0.2), &config));
        }
        assert!(p.observe(Some(0.2), &config));
        assert_eq!(p.lr, 5e-4);
    }

    #[test]
    fn only_the_plateau_schedule_reduces_on_a_plateau() {
        let config = ScheduleSection {
            kind: ScheduleKind::Poly,
            plateau_patience: 0,
            early_stopping_patience: 2,
            ..ScheduleSection::default()
        };
        let mut p = Plateau::new(1e-3);
        for _ in 0..5 {
            assert!(!p.observe(Some(0.3), &config));
        }
        assert_eq!(p.lr, 1e-3);
        assert!(p.should_stop(&config), "early stopping still counts");
    }

    #[test]
    fn warm_up_then_poly_and_cosine_decay() {
        let poly = ScheduleSection {
            kind: ScheduleKind::Poly,
            warmup_steps: 10,
            ..ScheduleSection::default()
        };
        let lr = |c: &ScheduleSection, step| learning_rate(c, 1e-2, 1e-2, step, 110);
        assert!((lr(&poly, 0) - 1e-3).abs() < 1e-12);
        assert!((lr(&poly, 4) - 5e-3).abs() < 1e-12);
        assert!((lr(&poly, 10) - 1e-2).abs() < 1e-12);
        let half = 1e-2 * 0.5f64.powf(0.9);
        assert!((lr(&poly, 60) - half).abs() < 1e-12);
        assert!(lr(&poly, 109) < 1e-3 && lr(&poly, 109) > 0.0);
        let cosine = ScheduleSection {
            kind: ScheduleKind::Cosine,
            warmup_steps: 10,
            min_lr: 1e-4,
            ..ScheduleSection::default()
        };
        assert!((lr(&cosine, 10) - 1e-2).abs() < 1e-12);
        assert!((lr(&cosine, 60) - (1e-4 + (1e-2 - 1e-4) * 0.5)).abs() < 1e-12);
        assert!((lr(&cosine, 110) - 1e-4).abs() < 1e-12);
        // The plateau schedule follows the plateau rate after warm-up.
        let plateau = ScheduleSection {
            warmup_steps: 4,
            ..plateau()
        };
        assert!((learning_rate(&plateau, 1e-2, 2e-3, 1, 100) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(&plateau, 1e-2, 2e-3, 50, 100) - 2e-3).abs() < 1e-12);
    }
}
