//! ReduceLROnPlateau (mode "max", on validation Dice) and early stopping, with state
//! that is saved in checkpoints so a resumed run schedules exactly as before.

use serde::{Deserialize, Serialize};

use super::config::ScheduleSection;

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
    /// Returns whether the learning rate was reduced.
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

    #[test]
    fn halves_after_patience_epochs_without_improvement() {
        let config = ScheduleSection::default(); // factor 0.5, patience 3
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
            ..ScheduleSection::default()
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
            ..ScheduleSection::default()
        };
        let mut p = Plateau::new(1e-3);
        for _ in 0..10 {
            p.observe(Some(0.1), &config);
        }
        assert_eq!(p.lr, 4e-4);
    }
}
