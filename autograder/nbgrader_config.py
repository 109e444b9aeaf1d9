"""nbgrader configuration of the course (nbgrader 0.9.x).

The course root is the repository (the folder above this file), wherever it is checked out:
``solutions/`` holds the source notebooks, ``lessons/`` the released student versions, and
``autograder/`` the submissions, autograded copies, feedback, grade exports and the gradebook
(all git-ignored). Use it from the repository root with

    nbgrader <command> ... --config autograder/nbgrader_config.py

or through ``python -m autograder nbgrader <command> ...``, which adds ``--config`` and puts the
virtual environment's ``bin/`` on PATH (nbgrader shells out to ``alembic``).
"""

import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_HERE = os.path.join(_ROOT, "autograder")

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.course_id = "dcgan-course"
c.CourseDirectory.root = _ROOT
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "lessons"
c.CourseDirectory.submitted_directory = os.path.join("autograder", "submitted")
c.CourseDirectory.autograded_directory = os.path.join("autograder", "autograded")
c.CourseDirectory.feedback_directory = os.path.join("autograder", "feedback")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(_HERE, "gradebook.db")
# Files nbgrader copies next to each notebook (release, autograde) except these.
# Run outputs a lesson leaves when it is executed in place (runs/, data/, checkpoints, learning.json)
# are not part of the lesson: never released, never copied next to a submission.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.log", "*.orig",
                            "runs", "data", "*.pt", "*.pth", "learning.json", "*.gif"]

c.NbGrader.logfile = os.path.join(_HERE, ".nbgrader.log")

# Every cell of a submission gets at most this many seconds; a student's infinite loop costs that
# cell's points, not the whole run (nbgrader 0.9 reads Execute.timeout, not
# ExecutePreprocessor.timeout). Lessons skip long work under NBGRADER_EXECUTION.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
c.Execute.kernel_name = "python3"
# Warnings in the grading kernel go to stdout: nbgrader scores a graded cell zero when it writes
# anything to stderr, and a warning (torch's UserWarnings, a DeprecationWarning from a library
# upgrade) is not a wrong answer. Same kernel arguments as `python -m autograder check`.
c.Execute.extra_arguments = [
    "--HistoryManager.hist_file=:memory:",
    "--IPKernelApp.exec_lines=import autograder.kernel_init",
]

# Autograde the trusted way: the student's code runs in a sandboxed worker, the checks judge in
# nbgrader's own process (autograder/preprocess.py, autograder/trusted.py); the rest of nbgrader's
# autograde steps are its own. By name: imported when autograde runs.
c.Autograde.autograde_preprocessors = [
    "autograder.preprocess.TrustedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# ... and keep what trusted grading recorded (containment, answers flagged for review) in the notebook
c.ClearMetadataPreprocessor.preserve_nb_metadata_mask = {("language_info", "name"), ("autograder",)}

# A test cell deleted by a student is put back (with the original hidden tests) and graded.
c.OverwriteCells.add_missing_cells = True

# Feedback HTML: no hidden-test source, and graded cells' errors reduced to their last line so
# a traceback cannot show hidden-test lines either.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    # by name: imported when feedback is generated (a failed import then stops it loudly, where a
    # failed import here would only be logged and the feedback generated without these)
    "autograder.feedback.HideHiddenTests",
    "autograder.feedback.ShortenGradedTracebacks",
]

# `nbgrader export` writes the grade book here.
c.ExportPlugin.to = os.path.join(_HERE, "grades.csv")
