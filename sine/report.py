"""The metrics file and the summary printed at the end of a run."""

import json
import os


def metrics(settings, results, num_parameters, wall_seconds):
    """Everything measured, as a JSON-ready dict."""
    return {
        'settings': settings.flag_values,
        'num_parameters': num_parameters,
        'held_out_tasks': settings.eval_samples,
        'test_steps': settings.eval_iters,
        'wall_seconds': wall_seconds,
        'methods': [_result_metrics(result, settings) for result in results],
    }


def _result_metrics(result, settings):
    final = result.final.curve
    return {
        'name': result.name,
        'kind': result.kind,
        'algorithm': result.algorithm,
        'inner_optimizer': result.optimizer.name,
        'inner_learning_rate': result.optimizer.learning_rate,
        'train_seconds': result.train_seconds,
        'training_curve': [{'meta_iterations': i, 'inner_loss': loss}
                           for i, loss in result.training_curve],
        'final': {str(step): {'mean_mse': final.at(step)[0], 'ci95': final.at(step)[1]}
                  for step in settings.report_steps},
        'evaluations': [{'meta_iterations': evaluation.meta_iterations,
                         'steps': evaluation.curve.steps,
                         'mean_mse': evaluation.curve.mean,
                         'ci95': evaluation.curve.ci95}
                        for evaluation in result.evaluations],
    }


def write_json(path, data):
    with open(path, 'w', encoding='utf-8') as file:
        json.dump(data, file, indent=1)


def summary(settings, results, paths):
    """The table of final test MSEs and the files written, as lines of text."""
    steps = settings.report_steps
    name_width = max(len(result.name) for result in results)
    lines = ['Test MSE on the %d-point grid after k steps on %d points: mean +/- 95%% interval '
             'over %d held-out tasks' % (settings.family.grid.shape[0], settings.num_shots,
                                         settings.eval_samples),
             '%-*s %s' % (name_width, 'method', ' '.join('%16s' % ('k=%d' % k) for k in steps))]
    for result in results:
        cells = ['%7.3f +/- %-5.3f' % result.final.curve.at(step) for step in steps]
        lines.append('%-*s %s' % (name_width, result.name, ' '.join(cells)))
    for result in results:
        if result.training_curve and result.kind == 'meta-learning':
            iterations = result.training_curve[-1][0]
            lines.append('%s: %d meta-iterations in %.1f s (%.0f per second, compilation '
                         'included)' % (result.name, iterations, result.train_seconds,
                                        iterations / result.train_seconds))
    lines.append('Wrote %s' % ', '.join(os.path.normpath(path) for path in paths))
    return lines
